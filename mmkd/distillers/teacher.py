"""Build a frozen teacher from its config and checkpoint."""
import importlib.util
import os
import os.path as osp
import re
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

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


TEACHER_KEYS = ('config', 'checkpoint', 'strip_prefix', 'autocast')
AUTOCAST_DTYPES = ('float16', 'bfloat16')


def check_teacher_reference(teacher: dict) -> None:
    """Check the distiller's ``teacher`` argument before any model is built.

    Raises:
        ValueError: unknown keys, no config, a bad ``autocast`` value or a
            bad checkpoint reference.
        FileNotFoundError: the checkpoint file does not exist.
    """
    if not isinstance(teacher, dict):
        raise ValueError('teacher must be dict(config=..., checkpoint=...); '
                         f'got a {type(teacher).__name__}.')
    unknown = set(teacher) - set(TEACHER_KEYS)
    if unknown or 'config' not in teacher:
        raise ValueError(
            'teacher must be dict(config=..., checkpoint=...[, '
            f'strip_prefix=..., autocast=...]); got keys {sorted(teacher)}.')
    parse_teacher_autocast(teacher.get('autocast', False))
    check_checkpoint_reference(teacher.get('checkpoint'))


def parse_teacher_autocast(value: Union[bool, str, torch.dtype]
                           ) -> Union[bool, torch.dtype]:
    """The teacher's ``autocast`` option: ``False``, ``True`` or a dtype.

    Args:
        value: ``False`` (default: the teacher runs in the precision of
            its weights, float32, even under ``--amp``); ``True`` (autocast
            in the dtype of the enclosing autocast, i.e. the one ``--amp``
            chose, else the device's default: float16 on GPUs, bfloat16 on
            CPUs); or ``'float16'`` / ``'bfloat16'`` (or the torch dtype).

    Raises:
        ValueError: any other value; the message lists the valid ones.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in AUTOCAST_DTYPES:
        return getattr(torch, value)
    if isinstance(value, torch.dtype) and str(value)[6:] in AUTOCAST_DTYPES:
        return value
    raise ValueError(
        f'teacher.autocast must be False, True, "float16" or "bfloat16"; '
        f'got {value!r}.')


def teacher_autocast(device_type: str,
                     autocast: Union[bool, torch.dtype]) -> torch.autocast:
    """The autocast context the teacher's forward runs in.

    ``False`` switches autocast *off* (an enclosing ``--amp`` context does
    not reach the teacher), so its records are float32; otherwise the
    records come out in the autocast dtype and the terms, which compute
    their losses in float32, take them as they are.

    Args:
        device_type: where the inputs are, e.g. ``'cuda'`` or ``'cpu'``.
        autocast: a value returned by :func:`parse_teacher_autocast`.
    """
    if autocast is False:
        return torch.autocast(device_type, enabled=False)
    dtype = None if autocast is True else autocast
    return torch.autocast(device_type, dtype=dtype)


def build_frozen_teacher(config: Union[str, dict, Config],
                         checkpoint: Optional[str],
                         fallback_scope: Optional[str],
                         strip_prefix: Optional[str] = None) -> nn.Module:
    """Build the teacher, load its weights strictly and freeze it.

    The checkpoint is checked before the (possibly large) model is built,
    so a wrong path fails fast. Frozen means ``requires_grad=False`` for
    every parameter and eval mode for every module (dropout too).

    Raises:
        ValueError: no checkpoint was given (a random teacher teaches
            nothing), or a URL that is not http(s).
        FileNotFoundError: the checkpoint or config file does not exist.
        RuntimeError: the checkpoint does not fit the config.
    """
    check_checkpoint_reference(checkpoint)
    model_cfg, scope = resolve_model_config(config, fallback_scope)
    teacher = build_model_in_scope(model_cfg, scope)
    load_teacher_weights(teacher, checkpoint, strip_prefix=strip_prefix)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
