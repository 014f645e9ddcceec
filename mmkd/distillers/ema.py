"""An EMA teacher: the running mean of the student's weights.

Mean teacher (Tarvainen & Valpola, NeurIPS 2017) and self-distillation
without an external teacher: a copy of the student whose parameters and
floating-point buffers follow ``θ' ← α θ' + (1 − α) θ`` once a step,
with ``α = min(decay, 1 − 1 / (u + 1))`` at its ``u``-th update (``u =
0`` copies the student, so early on it is the plain mean of the student's
iterates, as in the paper's code); integer buffers are copied.

The distiller applies the update lazily, at the start of each training
step, for the optimizer step that preceded it: step ``i`` reads an EMA
updated ``i + 1`` times (the copy of the initialised student, then once
after each of the ``i`` optimizer steps). It does not depend on a hook,
a model wrapper or the process count, and since the EMA's weights and its
update count are saved with the distiller's state dict
(``ema_teachers.<name>.``), a resumed run goes on exactly as an
uninterrupted one. With gradient accumulation it updates once a step
(every ``loss`` call), as mmdet's ``EMAHook`` does once an iteration.
"""
import copy

import torch
import torch.nn as nn

#: the state dict key prefix of the EMA teachers, under the distiller's
STATE_PREFIX = 'ema_teachers.'
UPDATES_KEY = 'num_updates'


def make_ema_copy(student: nn.Module) -> nn.Module:
    """A frozen copy of the student (eval mode, no gradients)."""
    ema = copy.deepcopy(student)
    ema.eval()
    ema.requires_grad_(False)
    return ema


def ema_momentum(update: int, decay: float) -> float:
    """``α`` of the ``update``-th update (0-based): 0 for the first (a
    copy), then ``min(decay, 1 − 1 / (update + 1))``."""
    return min(decay, 1.0 - 1.0 / (update + 1))


@torch.no_grad()
def ema_update(ema: nn.Module, student: nn.Module, alpha: float) -> None:
    """``θ' ← α θ' + (1 − α) θ`` for parameters and floating buffers;
    other buffers copied. The two models have the same structure."""
    pairs = list(zip(ema.parameters(), student.parameters())) + \
        list(zip(ema.buffers(), student.buffers()))
    for mine, theirs in pairs:
        if mine.dtype.is_floating_point and alpha > 0:
            mine.mul_(alpha).add_(theirs.detach().to(mine.dtype),
                                  alpha=1.0 - alpha)
        else:
            mine.copy_(theirs.detach())
