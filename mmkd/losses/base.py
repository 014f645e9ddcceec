"""The base class of a distillation term."""
from typing import Any, List, Sequence, Union

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..recorders import MethodCalls, ReadSpec
from ..slots import ModelSlot, TeacherEnsemble
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


def as_method_calls(value: Any, side: str, term: str) -> MethodCalls:
    """A recorded value that must be method calls (a head term's record),
    or a TypeError naming the term and the side."""
    if not isinstance(value, MethodCalls):
        raise TypeError(f'Term {term!r}: the {side} record is a '
                        f'{type(value).__name__}, not method calls.')
    return value


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

    A term's config may also name the teacher(s) it reads,
    ``teacher_model=`` (a name, a tuple of names averaged, or a schedule;
    see :class:`~mmkd.slots.TeacherChoice`): the distiller takes that key
    and sets :attr:`teacher_choice`; a term needs none with one teacher.
    With trainable slots (peers, auxiliary heads), ``student_model=``
    names the model on the student side (default ``'student'``) and
    ``teacher_model='student'`` reads the student, detached.

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

    #: whether the term can read the average of several teachers
    #: (``teacher_model=('a', 'b')``); see :meth:`combine_teachers`
    teacher_ensembles = True
    #: the model on the term's student side: ``'student'`` or a trainable
    #: slot (set by the distiller from the term's ``student_model``)
    student_model = 'student'

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

    def bind_models(self, student: nn.Module,
                    teachers: Sequence[ModelSlot]) -> None:
        """Called once at build time, before any record is made, with the
        student and the slots of every teacher the term reads (one, or
        several for an ensemble or a schedule).

        A term may check there the modules it reads (and fail with a
        message naming itself), and a term that runs teacher modules on
        student inputs (e.g. the teacher's R-CNN head scoring the
        student's RoIs) keeps the teacher's module here, outside its
        submodules (``object.__setattr__``), so it stays out of
        ``state_dict()`` and the optimizer, and EMA deep copies share it;
        such a term reads one teacher (:meth:`single_teacher`). The
        default does nothing.
        """

    def single_teacher(self, teachers: Sequence[ModelSlot]) -> ModelSlot:
        """The one teacher of a term that runs the teacher's modules
        itself; a ValueError when its ``teacher_model`` names several."""
        if len(teachers) != 1:
            raise ValueError(
                f'Term {self.name!r} ({type(self).__name__}) runs the '
                "teacher's own modules, so it reads one teacher; its "
                f'teacher_model names {[t.name for t in teachers]}. Give '
                'it one name (one term per teacher).')
        return teachers[0]

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

    def check_teacher_agreement(self, student: Any, first: Any, other: Any,
                                other_name: str) -> None:
        """Raise at build time when another teacher's record (parsed, on
        the probe batch, like the student's and the first teacher's)
        cannot be averaged with or substitute for the first teacher's (in
        an ensemble or a schedule). The default asks for the same number
        of levels of the same shapes."""
        first_shapes = [tuple(t.shape) for t in first]
        other_shapes = [tuple(t.shape) for t in other]
        if first_shapes != other_shapes:
            raise ValueError(
                f'Term {self.name!r}: teacher {other_name!r} gives '
                f'{other_shapes} at {self.teacher_spec}, the term\'s first '
                f'teacher {first_shapes}; teachers averaged or scheduled in '
                'one term must give the same shapes there (write one term '
                'per teacher otherwise).')

    def combine_teachers(self, records: List[Any]) -> Any:
        """The ensemble of several teachers' parsed records: by default
        the average of each level (shapes checked at build time)."""
        return [torch.stack(level).mean(0) for level in zip(*records)]

    def read_teacher(self, value: Any) -> Any:
        """A teacher record as :meth:`compute` takes it: parsed, and for a
        :class:`~mmkd.slots.TeacherEnsemble` combined."""
        if isinstance(value, TeacherEnsemble):
            return self.combine_teachers(
                [self.parse_record(v, 'teacher') for v in value])
        return self.parse_record(value, 'teacher')

    def forward(self, student_value: Any, teacher_value: Any,
                data_samples: Sequence[BaseDataElement],
                iteration: int) -> torch.Tensor:
        """The weighted loss; zero (but connected) during warm-up and
        while the term is switched off (``enabled`` is ``False``)."""
        student_levels = self.parse_record(student_value, 'student')
        teacher_levels = self.read_teacher(teacher_value)
        loss = self.compute(student_levels, teacher_levels, data_samples)
        off = not self.enabled or iteration < self.warmup_iters
        weight = 0.0 if off else self.loss_weight
        return loss * weight
