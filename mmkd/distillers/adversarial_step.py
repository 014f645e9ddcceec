"""The training step of a distiller with adversarial terms.

Like MMEngine's GAN example and mmagic's ``BaseGAN.train_step``, the
discriminators are updated first, then the student against the updated
discriminators; unlike them, both models run forward once a step:

1. teacher and student forward, every term computed; adversarial terms
   only keep their (detached) maps;
2. ``discriminator_steps`` updates of the discriminators with
   ``optim_wrapper['discriminator']`` on those maps;
3. the student's adversarial losses against the updated discriminators
   (their parameters frozen), then one update of the student and adaptors
   with ``optim_wrapper['student']``.

The optimizer wrappers come from
:class:`mmkd.optim.AdversarialOptimWrapperConstructor`.
"""
import contextlib
import math
from typing import Callable, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper, OptimWrapperDict

from .nonfinite import NonFiniteLossError

KEYS = ('student', 'discriminator')


def split_optim_wrapper(optim_wrapper: OptimWrapperDict
                        ) -> Tuple[OptimWrapper, OptimWrapper]:
    """The student's and the discriminators' wrappers, or a clear error."""
    if not isinstance(optim_wrapper, OptimWrapperDict) or \
            set(optim_wrapper.keys()) != set(KEYS):
        got = list(optim_wrapper.keys()) if isinstance(
            optim_wrapper, OptimWrapperDict) else type(optim_wrapper).__name__
        raise TypeError(
            'A distiller with an adversarial term trains two optimizers; '
            'set optim_wrapper=dict(constructor='
            '"mmkd.AdversarialOptimWrapperConstructor", student='
            '{{_base_.optim_wrapper}}, discriminator=dict(optimizer=dict('
            f'type="SGD", lr=4e-4))). Got {got}.')
    return optim_wrapper['student'], optim_wrapper['discriminator']


def adversarial_train_step(
        distiller, data: Union[dict, tuple, list],
        optim_wrapper: OptimWrapperDict, ddp: Optional[nn.Module] = None,
        reduce_gradients: Optional[Callable[[nn.Module], None]] = None
) -> Dict[str, torch.Tensor]:
    """One step: discriminators then student (see the module docstring).

    Args:
        distiller: the :class:`~mmkd.Distiller`.
        data: the batch from the dataloader.
        optim_wrapper: ``OptimWrapperDict(student=..., discriminator=...)``.
        ddp: the DDP wrapper of the distiller, whose forward pass
            averages the student's gradients, or ``None``.
        reduce_gradients: called on each discriminator before its
            optimizer steps (averages its gradients over ranks), or
            ``None``.

    Returns:
        The log variables: the student's losses as
        :meth:`~mmkd.Distiller.parse_losses` gives them, plus
        ``loss_discriminator_<term>`` of the last discriminator update
        (not part of the student's loss).
    """
    student_wrapper, disc_wrapper = split_optim_wrapper(optim_wrapper)
    terms = distiller.adversarial_terms()
    model = distiller if ddp is None else ddp
    try:
        with student_wrapper.optim_context(model), \
                contextlib.ExitStack() as stack:
            for term in terms.values():
                stack.enter_context(term.deferred())
            data = distiller.data_preprocessor(data, True)
            losses = model._run_forward(data, mode='loss')
        disc_log = _update_discriminators(distiller, terms, disc_wrapper,
                                          reduce_gradients)
        with student_wrapper.optim_context(model):
            iteration = distiller._step_iteration
            for name, term in terms.items():
                losses[f'loss_distill_{name}'] = \
                    term.student_loss() * term.weight_at(iteration)
        parsed, log_vars = distiller.parse_losses(losses)
        student_wrapper.update_params(parsed)
    finally:
        distiller._give_inputs(None)  # images and maps of this batch
    log_vars.update(disc_log)
    return log_vars


def _update_discriminators(
        distiller, terms: dict, disc_wrapper: OptimWrapper,
        reduce_gradients: Optional[Callable[[nn.Module], None]]
) -> Dict[str, torch.Tensor]:
    steps = max(term.discriminator_steps for term in terms.values())
    log: Dict[str, torch.Tensor] = {}
    for step in range(steps):
        with disc_wrapper.optim_context(distiller):
            losses = {f'loss_discriminator_{name}': term.discriminator_loss()
                      for name, term in terms.items()
                      if step < term.discriminator_steps}
        log = {k: v.detach() for k, v in losses.items()}
        bad = [k for k, v in log.items() if not math.isfinite(v.item())]
        if bad:
            iteration = distiller._step_iteration + 1
            if distiller.nonfinite_guard.policy == 'stop':
                raise NonFiniteLossError(
                    f'Iteration {iteration}: the discriminator loss '
                    f'{bad[0]} is {log[bad[0]].item()}; training stopped '
                    'before the discriminator step. Lower the '
                    'discriminator\'s lr or the term\'s loss_weight, or set '
                    'the distiller\'s nonfinite_loss="skip".')
            continue  # 'skip': no discriminator update this time
        loss = sum(losses.values())
        if reduce_gradients is None:
            disc_wrapper.update_params(loss)
            continue
        # OptimWrapper.update_params, with the gradients averaged over
        # ranks between backward and step
        disc_wrapper.backward(disc_wrapper.scale_loss(loss))
        if disc_wrapper.should_update():
            for term in terms.values():
                reduce_gradients(term.discriminator)
            disc_wrapper.step()
            disc_wrapper.zero_grad()
    return log
