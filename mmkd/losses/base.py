"""The base class of a distillation term."""
from typing import Any, List, Sequence, Union

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..recorders import ReadSpec
from ..utils.validation import check_iterations, check_loss_weight


def as_levels(value: Any, side: str, term: str) -> List[torch.Tensor]:
    """A recorded value as a list of tensors, one per level."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, torch.Tensor) for v in value):
        return list(value)
    raise TypeError(
        f'Term {term!r}: the {side} record is a {type(value).__name__}, not '
        'a tensor or a tuple of tensors. Read a module whose output (or '
        'input) is a feature map, e.g. "neck" or "neck.fpn_convs.0".')


class DistillTerm(nn.Module):
    """One distillation term: where it reads, and the loss it computes.

    Subclasses implement :meth:`setup`, called once at build time with the
    records of a probing forward pass (to infer channels and validate
    shapes), and :meth:`compute`, which returns the unweighted loss.

    Args:
        student: student module path, or ``dict(path=..., record=...)``.
        teacher: teacher module path, or ``dict(path=..., record=...)``.
        loss_weight: the loss is multiplied by it; a finite number >= 0.
        warmup_iters: the term is switched off (multiplied by 0, so DDP
            still sees its parameters used) for the first N >= 0
            iterations; FGFI switches imitation off for the first 400.

    Attributes:
        enabled: ``False`` switches the term off the same way (its loss is
            computed and multiplied by 0). ``mmkd.DistillSwitchHook`` sets
            it, e.g. for the last epochs of MMYOLO's RTMDet recipe.

    Raises:
        TypeError: ``loss_weight`` is not a number or ``warmup_iters`` not
            an integer.
        ValueError: ``loss_weight`` is NaN, infinite or negative, or
            ``warmup_iters`` is negative.
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__()
        self.student_spec = ReadSpec.parse(student)
        self.teacher_spec = ReadSpec.parse(teacher)
        self.loss_weight = check_loss_weight(loss_weight)
        self.warmup_iters = check_iterations(warmup_iters, 'warmup_iters')
        self.enabled = True
        self.name = type(self).__name__

    def parse_record(self, value: Any, side: str) -> Any:
        """What :meth:`setup` and :meth:`compute` get from a record: a list
        of tensors, one per level, unless a subclass reads other records
        (e.g. method calls of a head)."""
        return as_levels(value, side, self.name)

    def bind_models(self, student: nn.Module, teacher: nn.Module,
                    teacher_autocast: Union[bool, torch.dtype] = False
                    ) -> None:
        """Called once at build time, before any record is made, with the
        student and the distiller's frozen teacher.

        A term may check there the modules it reads (and fail with a
        message naming itself), and a term that runs teacher modules on
        student inputs (e.g. the teacher's R-CNN head scoring the
        student's RoIs) keeps the teacher here, outside its submodules
        (``object.__setattr__``), so it stays out of ``state_dict()`` and
        the optimizer, and EMA deep copies share it. ``teacher_autocast``
        is the distiller's teacher autocast setting. The default does
        nothing.
        """

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        """Check shapes and build what depends on them (e.g. adaptors)."""

    def check_level_count(self, student_levels: Sequence[torch.Tensor],
                          teacher_levels: Sequence[torch.Tensor]) -> None:
        if len(student_levels) != len(teacher_levels):
            raise ValueError(
                f'Term {self.name!r}: student {self.student_spec} gives '
                f'{len(student_levels)} level(s) '
                f'{[tuple(t.shape) for t in student_levels]} but teacher '
                f'{self.teacher_spec} gives {len(teacher_levels)} '
                f'{[tuple(t.shape) for t in teacher_levels]}: read places '
                'with the same number of levels.')

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, student_value: Any, teacher_value: Any,
                data_samples: Sequence[BaseDataElement],
                iteration: int) -> torch.Tensor:
        """The weighted loss; zero (but connected) during warm-up and
        while the term is switched off (``enabled`` is ``False``)."""
        student_levels = self.parse_record(student_value, 'student')
        teacher_levels = self.parse_record(teacher_value, 'teacher')
        loss = self.compute(student_levels, teacher_levels, data_samples)
        off = not self.enabled or iteration < self.warmup_iters
        weight = 0.0 if off else self.loss_weight
        return loss * weight
