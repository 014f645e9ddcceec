"""Refuse to write a checkpoint whose weights are NaN or infinite."""
from typing import Dict, List

import torch
from mmengine.hooks import Hook

from ..registry import HOOKS


def nonfinite_tensors(state_dict: Dict[str, object]) -> List[str]:
    """Keys of the floating-point tensors that hold NaN or inf."""
    return [key for key, value in state_dict.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point()
            and not bool(torch.isfinite(value).all())]


@HOOKS.register_module()
class FiniteCheckpointHook(Hook):
    """Stop training instead of saving non-finite weights.

    Runs just before MMEngine writes a checkpoint: if any weight of the
    model is NaN or infinite (say, a learning rate so large that one step
    overflowed the weights) it raises, so the checkpoints already on disk,
    the last good ones, are neither joined nor rotated out by a broken one
    (``max_keep_ckpts`` deletes the oldest only after a save).
    ``tools/train.py`` adds it to every config. The distiller's
    ``nonfinite_loss`` check stops a step *before* a NaN loss reaches the
    weights; this hook catches what gets past it (a finite loss whose
    update overflows).

    Examples:
        >>> custom_hooks = [dict(type='mmkd.FiniteCheckpointHook')]
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        bad = nonfinite_tensors(checkpoint.get('state_dict', {}))
        if bad:
            raise FloatingPointError(
                f'Iteration {runner.iter}: not saving a checkpoint whose '
                f'weights are NaN/inf ({len(bad)} tensors, e.g. '
                f'{bad[:5]}). The checkpoints on disk are untouched; resume '
                'from the last one with a smaller learning rate or loss '
                'weights.')
