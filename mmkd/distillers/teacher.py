"""Build a frozen teacher from its config and checkpoint."""
import importlib.util
import os
import os.path as osp
import re
from typing import Any, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

from ..slots import (ROLES, TRAINABLE_ROLES, SlotInputs, parse_autocast,
                     slot_autocast)
from ..utils import is_url, load_teacher_weights, nearest_names


def current_scope() -> Optional[str]:
    """The default scope set by the Runner (``'mmdet'``, ``'mmseg'``...)."""
    scope = DefaultScope.get_current_instance()
    return scope.scope_name if scope is not None else None


def build_model_in_scope(cfg: dict, scope: Optional[str]) -> nn.Module:
    """Build a model config in ``scope`` (e.g. an unchanged mmdet config)."""
    if scope is None:
        raise RuntimeError(
            'No default scope is set, so mmkd cannot tell whether the model '
            f'{cfg.get("type")!r} is an mmdet or an mmseg model. Add '
            'default_scope = "mmdet" (or "mmseg") to the config, or call '
            'mmengine.registry.init_default_scope first.')
    with DefaultScope.overwrite_default_scope(scope):
        return ROOT_MODELS.build(cfg)


def resolve_config_path(path: str) -> str:
    """A local config path, or ``'mmdet::rel/path.py'`` in an installed
    package's configs, as a file path.

    Raises:
        FileNotFoundError: no such file; names the nearest configs.
    """
    if '::' not in path:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'Teacher config not found: {path!r}. Give a local file, a '
                'package config such as "mmdet::retinanet/'
                'retinanet_r101_fpn_1x_coco.py", or a dict.')
        return path
    package, relative = path.split('::', 1)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f'Teacher config {path!r}: package {package!r} is not '
            'installed.')
    root = osp.join(osp.dirname(spec.origin), '.mim', 'configs')
    full = osp.join(root, relative)
    if not osp.isfile(full):
        folder = osp.dirname(full)
        siblings = sorted(f for f in os.listdir(folder)
                          if f.endswith('.py')) if osp.isdir(folder) else []
        raise FileNotFoundError(
            f'Teacher config {path!r} does not exist in {root}. Nearest: '
            f'{nearest_names(osp.basename(relative), siblings)}.')
    return full


def resolve_model_config(config: Union[str, dict, Config],
                         fallback_scope: Optional[str]
                         ) -> Tuple[ConfigDict, Optional[str]]:
    """A model config and its scope from a file path, a full config or a
    model dict.

    Args:
        config: ``'mmdet::retinanet/retinanet_r101_fpn_1x_coco.py'``, a
            local ``.py`` path, a full config (with ``model``) or a model
            config dict.
        fallback_scope: used when the config names no ``default_scope``.
    """
    if isinstance(config, str):
        config = Config.fromfile(resolve_config_path(config))
    if 'model' in config:
        return ConfigDict(config['model']), config.get(
            'default_scope', fallback_scope)
    if 'type' not in config:
        raise ValueError('teacher.config must be a config file, a full '
                         'config with "model", or a model dict with "type".')
    return ConfigDict(config), fallback_scope


def check_checkpoint_reference(checkpoint: Optional[str]) -> None:
    """Fail fast on a teacher checkpoint that cannot be loaded.

    Raises:
        ValueError: no checkpoint, or a URL scheme other than http(s).
        FileNotFoundError: a local checkpoint that does not exist.
    """
    if not checkpoint:
        raise ValueError(
            'teacher.checkpoint is required: a local path or URL of the '
            'trained teacher weights (a random teacher teaches nothing).')
    if is_url(checkpoint):
        return
    if re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', checkpoint):
        raise ValueError(
            f'teacher.checkpoint {checkpoint!r}: only http:// and https:// '
            'URLs are downloaded; give a local path for any other source.')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'Teacher checkpoint not found: {checkpoint!r}. Fix '
            'teacher.checkpoint (a local path or an http(s) URL).')


#: the keys of a frozen teacher's config (``teacher=`` or an entry of
#: ``teachers=``)
TEACHER_KEYS = ('config', 'checkpoint', 'strip_prefix', 'autocast',
                'inputs', 'role', 'cache_outputs')
#: the keys of an EMA teacher's config
EMA_KEYS = ('role', 'decay', 'autocast', 'inputs')


def check_teacher_reference(teacher: dict, where: str = 'teacher') -> None:
    """Check one teacher's config before any model is built.

    Args:
        teacher: ``dict(config=..., checkpoint=...[, strip_prefix=...,
            autocast=..., inputs=..., cache_outputs=...])``,
            ``dict(role='ema'[,
            decay=..., autocast=..., inputs=...])``, or a trainable slot
            (:func:`~mmkd.distillers.trainable.check_trainable_reference`).
        where: how the config names it (``'teacher'``,
            ``'teachers.r101'``), for the messages.

    Raises:
        ValueError: unknown keys, no config, a bad ``autocast``, ``inputs``
            or ``decay`` value or a bad checkpoint reference.
        FileNotFoundError: the checkpoint file does not exist.
    """
    if not isinstance(teacher, dict):
        raise ValueError(f'{where} must be dict(config=..., checkpoint=...); '
                         f'got a {type(teacher).__name__}.')
    role = teacher.get('role', 'frozen')
    if role not in ROLES:
        raise ValueError(f'{where}.role must be one of {ROLES}; got '
                         f'{role!r}.')
    if role in TRAINABLE_ROLES:
        from .trainable import check_trainable_reference
        check_trainable_reference(teacher, where)
        return
    parse_autocast(teacher.get('autocast', False), where)
    SlotInputs.parse(teacher.get('inputs'), where)
    if role == 'ema':
        if 'cache_outputs' in teacher:
            raise ValueError(
                f'{where} is an EMA teacher: its weights change every step, '
                'so its outputs cannot be cached. Remove cache_outputs (it '
                'is for frozen teachers).')
        unknown = set(teacher) - set(EMA_KEYS)
        if unknown:
            raise ValueError(
                f'{where} is an EMA teacher of the student: dict(role='
                f'"ema"[, decay=..., autocast=..., inputs=...]), with no '
                f'config or checkpoint; got keys {sorted(unknown)}.')
        check_ema_decay(teacher.get('decay', 0.999), where)
        return
    unknown = set(teacher) - set(TEACHER_KEYS)
    if unknown or 'config' not in teacher:
        raise ValueError(
            f'{where} must be dict(config=..., checkpoint=...[, '
            'strip_prefix=..., autocast=..., inputs=..., cache_outputs=...'
            f']); got keys {sorted(teacher)}.')
    if not isinstance(teacher.get('cache_outputs', False), bool):
        raise ValueError(
            f'{where}.cache_outputs must be True or False; got '
            f'{teacher["cache_outputs"]!r}.')
    check_checkpoint_reference(teacher.get('checkpoint'))


def check_ema_decay(decay: Any, where: str) -> float:
    """An EMA teacher's decay: a number in [0, 1)."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or \
            not 0 <= decay < 1:
        raise ValueError(f'{where}.decay must be a number in [0, 1), e.g. '
                         f'0.999; got {decay!r}.')
    return float(decay)


# the names the distiller used before slots; kept for code importing them
parse_teacher_autocast = parse_autocast
teacher_autocast = slot_autocast


def build_frozen_teacher(config: Union[str, dict, Config],
                         checkpoint: Optional[str],
                         fallback_scope: Optional[str],
                         strip_prefix: Optional[str] = None,
                         where: str = 'teacher') -> nn.Module:
    """Build the teacher, load its weights strictly and freeze it.

    The checkpoint is checked before the (possibly large) model is built,
    so a wrong path fails fast. Frozen means ``requires_grad=False`` for
    every parameter and eval mode for every module (dropout too).

    Raises:
        ValueError: no checkpoint was given (a random teacher teaches
            nothing), or a URL that is not http(s).
        FileNotFoundError: the checkpoint or config file does not exist.
        ConnectionError: a checkpoint URL could not be downloaded; the
            message names ``where`` (how the config names the slot), the
            URL and the cache path, and says how to go on offline.
        RuntimeError: the checkpoint does not fit the config.
    """
    check_checkpoint_reference(checkpoint)
    model_cfg, scope = resolve_model_config(config, fallback_scope)
    teacher = build_model_in_scope(model_cfg, scope)
    load_teacher_weights(teacher, checkpoint, strip_prefix=strip_prefix,
                         owner=where)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
