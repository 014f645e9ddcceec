"""Two optimizers for adversarial distillation: the student's and the
discriminators'.

The student config's own ``optim_wrapper`` stays as it is and becomes the
``student`` entry (student plus adaptors); the discriminators of the
adversarial terms get the ``discriminator`` entry. MMEngine's Runner then
holds an :class:`~mmengine.optim.OptimWrapperDict`, saves and restores both
optimizers, and builds one scheduler list per key.
"""
import copy
from typing import Dict, List, Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS

KEYS = ('student', 'discriminator')


def _discriminators(model: nn.Module) -> List[nn.Module]:
    """The discriminators of the model's adversarial terms."""
    from ..losses.adversarial import AdversarialTerm
    return [m.discriminator for m in model.modules()
            if isinstance(m, AdversarialTerm)]


def _without(module: nn.Module, excluded: set) -> Optional[nn.Module]:
    """``module`` with the modules in ``excluded`` left out, parameter names
    unchanged (so ``paramwise_cfg`` keys match as on the full model).

    Modules holding no excluded module are used as they are; their
    ancestors are mirrored by plain ``nn.Module`` containers with the same
    direct parameters and children."""
    if module in excluded:
        return None
    if not any(m in excluded for m in module.modules()):
        return module
    mirror = nn.Module()
    for name, param in module.named_parameters(recurse=False):
        mirror.register_parameter(name, param)
    for name, child in module.named_children():
        kept = _without(child, excluded)
        if kept is not None:
            mirror.add_module(name, kept)
    return mirror


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class AdversarialOptimWrapperConstructor:
    """Build ``OptimWrapperDict(student=..., discriminator=...)``.

    ``student`` is the student config's own ``optim_wrapper`` (type,
    optimizer, ``clip_grad``, ``paramwise_cfg``, even its own
    ``constructor``), applied to every trainable parameter of the distiller
    except the discriminators' (the student and the terms' adaptors);
    ``discriminator`` is applied to the discriminators. SKD trains its
    discriminator with SGD, lr 4e-4, momentum 0.9, weight decay 5e-4 and a
    poly schedule (power 0.9).

    Schedulers: give ``param_scheduler=dict(student=[...],
    discriminator=[...])``; a plain list applies to both.

    Args:
        optim_wrapper_cfg: ``dict(student=..., discriminator=...)``.
        paramwise_cfg: must be ``None``: put it inside the entries.

    Examples:
        >>> optim_wrapper = dict(
        ...     _delete_=True,
        ...     constructor='mmkd.AdversarialOptimWrapperConstructor',
        ...     student={{_base_.optim_wrapper}},
        ...     discriminator=dict(
        ...         type='OptimWrapper',
        ...         optimizer=dict(type='SGD', lr=4e-4, momentum=0.9,
        ...                        weight_decay=5e-4)))
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        cfg = dict(optim_wrapper_cfg)
        if paramwise_cfg:
            raise ValueError(
                'AdversarialOptimWrapperConstructor takes no top-level '
                'paramwise_cfg; put it inside optim_wrapper.student or '
                'optim_wrapper.discriminator.')
        missing = [k for k in KEYS if not isinstance(cfg.get(k), dict)]
        other = sorted(set(cfg) - set(KEYS) - {'type'})
        if missing or other:
            raise ValueError(
                'optim_wrapper for adversarial distillation needs exactly '
                f'the entries {list(KEYS)} (dicts, e.g. student='
                '{{_base_.optim_wrapper}}); missing '
                f'{missing}, unexpected {other}.')
        self.cfgs: Dict[str, dict] = {
            k: copy.deepcopy(dict(cfg[k])) for k in KEYS}
        for key, sub in self.cfgs.items():
            if 'optimizer' not in sub:
                raise ValueError(f'optim_wrapper.{key} has no optimizer, '
                                 'e.g. optimizer=dict(type="SGD", lr=4e-4).')

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        discriminators = _discriminators(model)
        if not discriminators:
            raise ValueError(
                'AdversarialOptimWrapperConstructor found no adversarial '
                'term (e.g. HolisticAdversarialKD) in the model; use the '
                'student\'s optim_wrapper as it is.')
        student = _without(model, set(discriminators))
        return OptimWrapperDict(
            student=build_optim_wrapper(student, self.cfgs['student']),
            discriminator=build_optim_wrapper(
                nn.ModuleList(discriminators), self.cfgs['discriminator']))


def uses_adversarial_constructor(optim_wrapper_cfg: Optional[dict]) -> bool:
    """Whether an ``optim_wrapper`` config is built by
    :class:`AdversarialOptimWrapperConstructor` (named with or without its
    ``mmkd.`` scope)."""
    constructor = str((optim_wrapper_cfg or {}).get('constructor', ''))
    return constructor.split('.')[-1] == \
        AdversarialOptimWrapperConstructor.__name__


def enable_amp(optim_wrapper_cfg: dict) -> bool:
    """Turn every optimizer wrapper of a config into ``AmpOptimWrapper``
    (dynamic loss scale), in place; ``False`` if all already were.

    Handles one wrapper, the entries of
    :class:`AdversarialOptimWrapperConstructor`, and MMEngine's dict of
    named wrappers (no ``type``, ``optimizer`` nor ``constructor``).
    """
    cfg = optim_wrapper_cfg
    if uses_adversarial_constructor(cfg):
        entries = [cfg[k] for k in KEYS if isinstance(cfg.get(k), dict)]
    elif 'optimizer' in cfg or 'type' in cfg or 'constructor' in cfg:
        entries = [cfg]
    else:
        entries = [v for v in cfg.values() if isinstance(v, dict)]
    changed = False
    for entry in entries:
        if entry.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
            entry['type'] = 'AmpOptimWrapper'
            entry['loss_scale'] = 'dynamic'
            changed = True
    return changed
