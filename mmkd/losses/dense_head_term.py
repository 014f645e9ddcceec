"""The base class of distillation terms that read a dense head."""
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..heads.predictions import DensePredictions, mean_teacher_predictions
from ..heads.views import (STUDENT_METHODS, TEACHER_METHODS, DenseHeadView,
                           check_alignment, view_for)
from ..recorders import MethodCalls
from ..slots import ModelSlot, TeacherEnsemble
from .base import DistillTerm, as_method_calls


class DenseHeadTerm(DistillTerm):
    """A term computed from a dense head's predictions, prior by prior.

    It records the student head's ``forward`` and ``get_targets`` calls in
    its own loss (so the assignment is the student's of this step, never
    computed twice) and the teacher head's ``forward`` call (the teacher
    runs to its head, never its loss). At build time it picks the head
    view of the student's head family and checks that the teacher lays out
    the same priors. Subclasses implement :meth:`loss`.

    Args:
        head: path of the student's dense head. Default ``'bbox_head'``.
        teacher_head: path of the teacher's; defaults to ``head``.
        loss_weight: the loss is multiplied by it.
        warmup_iters: the term is off for the first N iterations.
        extra_methods: more methods of both heads to record, for
            subclasses (e.g. ``'cls_convs.2.forward'``).
    """
    #: head families the term accepts (None: every supported family)
    families: Optional[Tuple[str, ...]] = None

    def __init__(self,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0,
                 extra_methods: Sequence[str] = ()) -> None:
        if not isinstance(head, str) or not (
                teacher_head is None or isinstance(teacher_head, str)):
            raise TypeError('head and teacher_head are module paths such as '
                            f'"bbox_head"; got {head!r}, {teacher_head!r}.')
        super().__init__(
            student=dict(path=head, record='calls',
                         methods=STUDENT_METHODS + tuple(extra_methods)),
            teacher=dict(path=teacher_head or head, record='calls',
                         methods=TEACHER_METHODS + tuple(extra_methods)),
            loss_weight=loss_weight, warmup_iters=warmup_iters)
        self.view: Optional[DenseHeadView] = None

    def bind_models(self, student: nn.Module,
                    teachers: Sequence[ModelSlot]) -> None:
        """Head terms compare priors one to one: every teacher must see
        the student's resolution."""
        for teacher in teachers:
            if teacher.inputs.rescaled:
                raise ValueError(
                    f'Term {self.name!r} ({type(self).__name__}) compares '
                    f'the heads prior by prior, but {teacher} sees the '
                    f'images rescaled by {teacher.inputs.scale}, so its '
                    'priors do not line up with the student\'s. Read a '
                    'rescaled teacher with feature terms (their adaptors '
                    'align the spatial sizes).')

    def parse_record(self, value: Any, side: str) -> MethodCalls:
        return as_method_calls(value, side, self.name)

    def setup(self, student_calls: MethodCalls, teacher_calls: MethodCalls,
              student_model: nn.Module) -> None:
        """Pick the head view; check the teacher's priors line up."""
        student_head = self._owner(student_calls, 'student')
        teacher_head = self._owner(teacher_calls, 'teacher')
        view = check_alignment(student_head, teacher_head, self.name)
        if self.families is not None and view.family not in self.families:
            raise TypeError(
                f'Term {self.name!r} ({type(self).__name__}) distils '
                f'{" or ".join(self.families)} heads; the student head is a '
                f'{type(student_head).__name__} ({view.family} family).')
        self.view = view
        self.check_heads(student_head, teacher_head)

    def check_teacher_agreement(self, student: MethodCalls,
                                first: MethodCalls, other: MethodCalls,
                                other_name: str) -> None:
        """Every teacher of an ensemble or a schedule lays out the
        student's priors, and (to average box outputs) encodes boxes as
        the first does."""
        student_head = self._owner(student, 'student')
        first_head = self._owner(first, 'teacher')
        other_head = self._owner(other, 'teacher')
        check_alignment(student_head, other_head,
                        f'{self.name} (teacher {other_name})')
        first_view = view_for(first_head, 'the first teacher head')
        other_view = view_for(other_head, f'teacher {other_name} head')
        if type(first_view) is not type(other_view):
            raise ValueError(
                f'Term {self.name!r}: teacher {other_name!r} has a '
                f'{type(other_head).__name__} ({other_view.family} family),'
                f' the first teacher a {type(first_head).__name__} '
                f'({first_view.family}); teachers averaged or scheduled in '
                'one head term must be of one head family.')
        self.check_heads(student_head, other_head)

    def combine_teachers(self, records: List[MethodCalls]
                         ) -> TeacherEnsemble:
        """Kept as they are: :meth:`collect` averages the teachers'
        aligned predictions."""
        return TeacherEnsemble(records)

    def check_heads(self, student_head: nn.Module,
                    teacher_head: nn.Module) -> None:
        """Raise at build time when the heads do not suit the term
        (``self.view`` is set)."""

    def require_sigmoid(self, *heads: nn.Module) -> None:
        """For terms defined on per-class sigmoid scores."""
        for head in heads:
            if not getattr(head, 'use_sigmoid_cls', False):
                raise TypeError(
                    f'Term {self.name!r} ({type(self).__name__}) compares '
                    f'per-class sigmoid scores; {type(head).__name__} '
                    'classifies with a softmax. Use a sigmoid head '
                    '(loss_cls with use_sigmoid=True).')

    def _owner(self, calls: MethodCalls, side: str) -> nn.Module:
        spec = self.student_spec if side == 'student' else self.teacher_spec
        try:
            return calls.last('forward').owner
        except KeyError as err:
            raise RuntimeError(
                f'Term {self.name!r}: the {side} head {spec.path!r} did not '
                f'run its forward: {err}') from err

    def collect(self, student_calls: MethodCalls,
                teacher_calls: Union[MethodCalls, TeacherEnsemble]
                ) -> DensePredictions:
        """The aligned predictions of this step, collected once for all
        terms reading the same records (kept with the student's record).
        Several teachers' predictions are averaged
        (:func:`~mmkd.heads.predictions.mean_teacher_predictions`)."""
        try:
            targets = student_calls.last('get_targets')
        except KeyError as err:
            raise RuntimeError(
                f'Term {self.name!r}: the student head '
                f'{self.student_spec.path!r} did not call get_targets() in '
                f'its loss, so there is no assignment to read: {err}') \
                from err
        ensemble = teacher_calls if isinstance(
            teacher_calls, TeacherEnsemble) else [teacher_calls]
        key = ('dense_predictions', type(self.view)) + tuple(
            id(calls.last('forward')) for calls in ensemble)
        if key not in targets.cache:
            preds = [self.view.collect(student_calls, calls)
                     for calls in ensemble]
            targets.cache[key] = preds[0] if len(preds) == 1 else \
                mean_teacher_predictions(preds)
        return targets.cache[key]

    def compute(self, student_calls: MethodCalls,
                teacher_calls: Union[MethodCalls, TeacherEnsemble],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        return self.loss(self.collect(student_calls, teacher_calls))

    def loss(self, preds: DensePredictions) -> torch.Tensor:
        """The unweighted loss from the aligned predictions."""
        raise NotImplementedError

    def prior_region(self, preds: DensePredictions
                     ) -> Optional[torch.Tensor]:
        """(N,) bool: the priors the loss reads (a region such as LD's
        main or valuable localization region), or ``None`` when it reads
        every prior. Terms with a ``region`` read it in :meth:`loss`;
        ``tools/feature_maps.py`` draws it."""
        return None
