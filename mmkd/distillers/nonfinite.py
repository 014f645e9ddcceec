"""What a training step does when a loss is NaN or infinite.

A NaN loss, back-propagated and stepped, writes NaN into every weight;
training then goes on to the end and saves checkpoints full of NaN. The
distiller checks its losses after they are summed and *before* the
optimizer step (``parse_losses``, which single-process and DDP training
both call), and either

- ``'stop'`` (default): raises :class:`NonFiniteLossError`, naming the
  iteration and which losses (task or ``loss_distill_<name>``) were not
  finite; the step is not taken, so no weight changes and no checkpoint of
  this iteration is written; or
- ``'skip'``: takes no optimizer step this iteration (the parameters and
  the optimizer state stay as they were, as when mixed precision's loss
  scaler skips an overflow step), logs a warning and counts the skipped
  steps in the log as ``nonfinite_skipped``.

Under DDP every rank learns whether any rank's loss was non-finite (one
all-reduce of a flag), so all ranks stop or skip together and none waits
forever in the next gradient all-reduce.
"""
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MMLogger
from torch.optim.optimizer import register_optimizer_step_pre_hook

NONFINITE_POLICIES = ('stop', 'skip')


class NonFiniteLossError(FloatingPointError):
    """A loss was NaN or infinite; training stopped before the step."""


def nonfinite_names(log_vars: Dict[str, torch.Tensor]) -> List[str]:
    """Names of the loss entries that are NaN or infinite, in loss order.

    Only entries whose name contains ``'loss'`` (those summed into the
    total) are looked at, except the total ``'loss'`` itself, which is
    non-finite exactly when one of them is. One host synchronisation.
    """
    names = [k for k in log_vars if 'loss' in k and k != 'loss'
             and isinstance(log_vars[k], torch.Tensor)]
    if not names:
        return []
    values = torch.stack([log_vars[k].detach().float().reshape(())
                          for k in names])
    finite = torch.isfinite(values).tolist()
    return [name for name, ok in zip(names, finite) if not ok]


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank (itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or \
            dist.get_world_size() == 1:
        return flag
    if 'nccl' in str(dist.get_backend()).lower():
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def zero_loss_of(model: nn.Module) -> torch.Tensor:
    """A loss of 0 whose gradient is 0 for every trainable parameter.

    Back-propagating it lets DDP finish its gradient all-reduce as in any
    step (every parameter gets a gradient) without NaN: the gradient of
    ``0 · Σp`` is 0 whatever ``p`` holds.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return torch.zeros(())
    return sum(p.sum() for p in params) * 0.0


class StepSkipper:
    """Makes the next optimizer step a no-op for a model's parameters.

    Registers a one-shot global optimizer step pre-hook (removed when it
    fires) that drops the gradients (``grad = None``) of the optimizer's
    parameters that belong to ``model``. PyTorch optimizers leave a
    parameter without a gradient untouched, moments and step count
    included, so the step is skipped exactly; gradient clipping ignores
    such parameters too.
    """

    def __init__(self) -> None:
        self._param_ids = set()
        self._handle = None

    def arm(self, model: nn.Module) -> None:
        """Skip the next step of any optimizer holding ``model``'s
        parameters."""
        self._param_ids = {id(p) for p in model.parameters()}
        if self._handle is None:
            self._handle = register_optimizer_step_pre_hook(
                self._drop_gradients)

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _drop_gradients(self, optimizer: torch.optim.Optimizer, args,
                        kwargs) -> None:
        mine = [p for group in optimizer.param_groups
                for p in group['params'] if id(p) in self._param_ids]
        if not mine:
            return  # another model's optimizer
        for param in mine:
            param.grad = None
        self.disarm()


class NonFiniteLossGuard:
    """Checks a step's losses and stops or skips the step (see module doc).

    Args:
        policy: ``'stop'`` or ``'skip'``.

    Raises:
        ValueError: an unknown policy.
    """

    def __init__(self, policy: str = 'stop') -> None:
        if policy not in NONFINITE_POLICIES:
            raise ValueError(f'nonfinite_loss must be one of '
                             f'{NONFINITE_POLICIES}, got {policy!r}.')
        self.policy = policy
        self.skipped = 0
        self._skipper = StepSkipper()

    def check(self, model: nn.Module, loss: torch.Tensor,
              log_vars: Dict[str, torch.Tensor],
              iteration: int) -> Optional[torch.Tensor]:
        """Returns ``None`` when every loss is finite, else the loss to
        back-propagate instead (skip policy).

        Args:
            model: the model trained (its parameters are left untouched by
                a skipped step).
            loss: the summed loss of this step.
            log_vars: the parsed losses, by name.
            iteration: the current iteration, for the messages.

        Raises:
            NonFiniteLossError: a loss is not finite under ``'stop'``.
        """
        bad = nonfinite_names(log_vars)
        if not any_rank(bool(bad), loss.device):
            return None
        if self.policy == 'stop':
            raise NonFiniteLossError(self._message(bad, log_vars, iteration))
        self.skipped += 1
        self._skipper.arm(model)
        MMLogger.get_current_instance().warning(
            f'Iteration {iteration}: non-finite loss '
            f'({self._describe(bad, log_vars) or "on another rank"}); the '
            f'optimizer step is skipped ({self.skipped} skipped so far).')
        return zero_loss_of(model)

    @staticmethod
    def _describe(bad: List[str], log_vars: Dict[str, torch.Tensor]) -> str:
        return ', '.join(f'{name}={log_vars[name].item()}' for name in bad)

    def _message(self, bad: List[str], log_vars: Dict[str, torch.Tensor],
                 iteration: int) -> str:
        if not bad:
            return (f'Iteration {iteration}: a loss on another rank is not '
                    'finite; stopping every rank before the optimizer step '
                    '(see that rank\'s log for which loss).')
        first = bad[0]
        kind = ('distillation term' if first.startswith('loss_distill_')
                else 'task loss')
        return (
            f'Iteration {iteration}: the {kind} {first} is '
            f'{log_vars[first].item()} (non-finite losses this step: '
            f'{self._describe(bad, log_vars)}). Training stopped before '
            'the optimizer step, so the weights and the checkpoints on '
            'disk are those of the last good iteration. Usual causes: a '
            'learning rate or loss_weight too large, a teacher checkpoint '
            'with bad weights, or fp16 overflow. To skip such steps '
            'instead (e.g. with mixed precision), set the distiller\'s '
            'nonfinite_loss=\'skip\'.')
