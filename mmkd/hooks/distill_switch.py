"""Switch distillation terms off from a given epoch or iteration on."""
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS
from ..utils.validation import check_fraction, check_iterations


@HOOKS.register_module()
class DistillSwitchHook(Hook):
    """Turn distillation terms off for the end of training.

    MMYOLO's RTMDet distillation trains the last 20 of its 300 epochs
    without distillation (the student settles on its own task loss while
    the data pipeline switches off strong augmentation). Before every
    training iteration this hook sets ``enabled`` on the chosen terms of
    the distiller: ``False`` from ``stop_epoch`` (or ``stop_iter``) on,
    ``True`` before, so resuming from any checkpoint gives the same
    schedule. A switched-off term is still computed and multiplied by 0,
    as during warm-up, so its parameters (adaptors) stay in the graph and
    DDP needs no ``find_unused_parameters``.

    Args:
        stop_epoch: the first epoch (0-based, as ``runner.epoch``) without
            distillation; for epoch-based loops. MMYOLO: 280 of 300.
        stop_iter: the first iteration (0-based, as ``runner.iter``)
            without distillation.
        stop_fraction: the fraction of training (of ``runner.max_iters``,
            which epoch-based loops count too) after which distillation
            stops, e.g. ``2 / 3`` for the last third without it; the same
            config then suits any schedule. Give exactly one of
            ``stop_epoch``, ``stop_iter`` and ``stop_fraction``.
        terms: names of the terms to switch off (keys of the distiller's
            ``distill``); ``None`` (default) for all of them.

    Examples:
        >>> custom_hooks = [
        ...     dict(type='mmkd.DistillSwitchHook', stop_epoch=280)]
        >>> custom_hooks = [
        ...     dict(type='mmkd.DistillSwitchHook', stop_fraction=2 / 3)]
    """

    priority = 'NORMAL'

    def __init__(self,
                 stop_epoch: Optional[int] = None,
                 stop_iter: Optional[int] = None,
                 terms: Optional[Sequence[str]] = None,
                 stop_fraction: Optional[float] = None) -> None:
        given = [stop_epoch, stop_iter, stop_fraction]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                'DistillSwitchHook needs exactly one of stop_epoch (the '
                'first epoch without distillation), stop_iter (the first '
                'iteration) and stop_fraction (the fraction of training '
                f'with it); got stop_epoch={stop_epoch!r}, '
                f'stop_iter={stop_iter!r}, stop_fraction={stop_fraction!r}.')
        self.stop_fraction = None if stop_fraction is None else \
            check_fraction(stop_fraction, 'stop_fraction')
        self.stop_epoch = None if stop_epoch is None else \
            check_iterations(stop_epoch, 'stop_epoch')
        self.stop_iter = None if stop_iter is None else \
            check_iterations(stop_iter, 'stop_iter')
        if isinstance(terms, str):
            terms = [terms]
        self.term_names = None if terms is None else list(terms)
        self._switched_off = False

    def _terms(self, runner) -> List[nn.Module]:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        terms = getattr(model, 'distill_terms', None)
        if terms is None:
            raise TypeError(
                f'DistillSwitchHook switches distillation terms, but the '
                f'model is a {type(model).__name__} without distill_terms; '
                'use it with type="mmkd.Distiller" models.')
        if self.term_names is None:
            return list(terms.values())
        unknown = [name for name in self.term_names if name not in terms]
        if unknown:
            raise KeyError(
                f'DistillSwitchHook: no term named {unknown} in the '
                f'distiller; its terms are {list(terms)}.')
        return [terms[name] for name in self.term_names]

    def before_train(self, runner) -> None:
        self._terms(runner)  # fail before the first step on a bad name
        if self.stop_fraction is not None:
            self.stop_iter = int(round(self.stop_fraction * runner.max_iters))

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self.stop_epoch is not None:
            off = runner.epoch >= self.stop_epoch
        else:
            off = runner.iter >= self.stop_iter
        for term in self._terms(runner):
            term.enabled = not off
        if off and not self._switched_off:
            runner.logger.info(
                f'DistillSwitchHook: distillation terms '
                f'{self.term_names or "(all)"} switched off at epoch '
                f'{runner.epoch}, iteration {runner.iter}.')
        self._switched_off = off
