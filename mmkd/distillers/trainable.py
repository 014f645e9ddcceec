"""Trainable slots: models that learn beside the student.

Three roles (:data:`mmkd.slots.TRAINABLE_ROLES`):

- ``peer``: a whole detector or segmentor of any architecture, trained
  from its own initialisation (or a checkpoint) with its own task loss and
  the terms where it is the student (online mutual learning, DML: Zhang
  et al., "Deep Mutual Learning", CVPR 2018); exportable by name;
- ``auxiliary``: a :class:`~mmkd.slots.TrainableSlotModule` reading the
  student's features (e.g. BYOT heads on shallower stages, ONE branches);
  dropped at export;
- ``augmented``: a :class:`~mmkd.slots.TrainableSlotModule` sharing the
  student's weights (NetAug); dropped at export.

Their modules are submodules of the distiller under ``trainable_slots.``:
in the state dict (resume is exact), in the one optimizer MMEngine builds
over the distiller's parameters, and in DDP's gradient reduction. When a
term reads a trainable model on its *teacher* side, the records are
detached: gradients never reach the model that plays teacher for a term.
"""
import copy
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from ..recorders import MethodCall, MethodCalls
from ..registry import MODELS
from ..slots import ModelSlot, SlotInputs, TrainableSlotModule
from .teacher import (build_model_in_scope, check_checkpoint_reference,
                      resolve_model_config)

#: the keys of ``dict(role='peer', ...)``
PEER_KEYS = ('role', 'config', 'checkpoint', 'strip_prefix')
#: the prefix of the trainable slots' weights in the distiller's state dict
TRAINABLE_PREFIX = 'trainable_slots.'


def check_trainable_reference(cfg: dict, where: str) -> None:
    """Check a trainable slot's config before any model is built.

    Args:
        cfg: ``dict(role='peer', config=...[, checkpoint=...,
            strip_prefix=...])`` or ``dict(role='auxiliary'|'augmented',
            type=..., **arguments)``.
        where: how the config names it (``'teachers.peer'``).

    Raises:
        ValueError: a peer without a config or with keys it does not take
            (a peer sees the student's batch in the student's precision:
            no ``inputs`` or ``autocast``), an auxiliary or augmented slot
            without ``type``, or a bad checkpoint reference.
    """
    role = cfg['role']
    if role == 'peer':
        unknown = set(cfg) - set(PEER_KEYS)
        if unknown or 'config' not in cfg:
            raise ValueError(
                f'{where} is a peer: dict(role="peer", config=...[, '
                'checkpoint=..., strip_prefix=...]); it trains on the '
                "student's batch in the student's precision; got keys "
                f'{sorted(cfg)}.')
        if cfg.get('checkpoint') is not None:
            check_checkpoint_reference(cfg['checkpoint'])
        return
    if 'type' not in cfg:
        raise ValueError(
            f'{where} is an {role} slot: dict(role="{role}", type=<a '
            'TrainableSlotModule, e.g. "mmkd.AuxiliaryHeads">, ...); got '
            f'keys {sorted(cfg)}.')
    for key in ('inputs', 'autocast', 'checkpoint'):
        if key in cfg:
            raise ValueError(f'{where}: an {role} slot takes no {key!r}; '
                             'it runs inside the student\'s step.')


def build_trainable_slot(name: str, cfg: dict, student: nn.Module,
                         student_cfg: dict, scope: Optional[str],
                         where: str) -> ModelSlot:
    """Build one trainable slot (not yet a submodule: the distiller
    registers its module).

    A peer's weights are random until ``init_weights`` (the Runner calls
    it), then its checkpoint, when one is given, is loaded by
    :func:`load_peer_checkpoint`.
    """
    cfg = dict(cfg)
    role = cfg.pop('role')
    if role == 'peer':
        model_cfg, peer_scope = resolve_model_config(cfg['config'], scope)
        module = build_model_in_scope(model_cfg, peer_scope)
        return ModelSlot(name, role, module, SlotInputs(),
                         checkpoint=cfg.get('checkpoint'),
                         settings=dict(strip_prefix=cfg.get('strip_prefix')))
    try:
        module = MODELS.build(
            dict(cfg, _scope_='mmkd'),
            default_args=dict(student=student,
                              student_cfg=copy.deepcopy(student_cfg)))
    except (TypeError, KeyError, ValueError) as err:
        raise type(err)(f'{where} ({cfg.get("type")}): {err}') from err
    if not isinstance(module, TrainableSlotModule):
        raise TypeError(f'{where}: {type(module).__name__} is not a '
                        'TrainableSlotModule (mmkd.slots).')
    return ModelSlot(name, role, module, SlotInputs())


def load_peer_checkpoint(slot: ModelSlot) -> None:
    """Load a peer's initial weights, strictly (after ``init_weights``)."""
    if slot.role != 'peer' or slot.checkpoint is None:
        return
    from ..utils.checkpoint import load_teacher_weights
    load_teacher_weights(slot.module, slot.checkpoint,
                         strip_prefix=slot.settings.get('strip_prefix'),
                         owner=f'teachers.{slot.name}')


def detach_record(value: Any) -> Any:
    """A record with every tensor detached from its graph, for the
    teacher side of a term that reads a trainable model.

    Tensors, nested lists/tuples/dicts and recorded method calls (their
    arguments and results; the owner module is kept, for the head views'
    layout checks) are copied structurally; anything else is returned as
    it is.
    """
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, MethodCalls):
        return MethodCalls({key: [detach_call(c) for c in calls]
                            for key, calls in value.items()})
    if isinstance(value, MethodCall):
        return detach_call(value)
    if isinstance(value, dict):
        return type(value)((k, detach_record(v)) for k, v in value.items())
    if isinstance(value, tuple) and hasattr(value, '_fields'):
        return type(value)(*(detach_record(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(detach_record(v) for v in value)
    if hasattr(value, 'detach') and callable(value.detach):
        return value.detach()  # e.g. mmengine data elements
    return value


def detach_call(call: MethodCall) -> MethodCall:
    """One recorded call with detached arguments and result."""
    return MethodCall(call.owner, call.name, detach_record(call.args),
                      detach_record(call.kwargs), detach_record(call.result),
                      call.key)


def slot_losses(name: str, losses: Dict[str, Any]) -> Dict[str, Any]:
    """A slot's losses under ``<slot name>.<key>`` (MMEngine sums every
    key that contains ``'loss'``; other keys, e.g. accuracies, are
    logged)."""
    return {f'{name}.{key}': value for key, value in losses.items()}
