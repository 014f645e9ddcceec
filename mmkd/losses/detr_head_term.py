"""The base class of distillation terms that read a DETR-family head."""
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..heads.query_views import (STUDENT_METHODS, TEACHER_METHODS,
                                 LayerPairs, QueryPredictions,
                                 check_query_heads,
                                 collect_query_predictions, decoder_depth,
                                 resolve_layer_pairs)
from ..recorders import MethodCalls
from .base import DistillTerm, as_method_calls


class QueryHeadTerm(DistillTerm):
    """A term computed from both DETR heads' per-layer query predictions.

    It records the student head's ``forward`` and ``get_targets`` calls in
    its own loss (the per-layer matching-query predictions and the
    student's own Hungarian assignment, see
    :mod:`mmkd.heads.query_views`) and the teacher head's ``forward``
    call (the teacher runs to its head in tensor mode, never its loss).
    At build time it checks both heads are of a known DETR family with the
    same classes, and maps decoder layers. Subclasses implement
    :meth:`loss`.

    Args:
        head: path of the student's DETR head. Default ``'bbox_head'``.
        teacher_head: the teacher's; defaults to ``head``.
        layers: which student decoder layer learns from which teacher
            layer: ``None`` (layers aligned from the last one, i.e. layer
            by layer for equal depths), ``'last'``, or ``(student,
            teacher)`` index pairs; see
            :func:`~mmkd.heads.query_views.resolve_layer_pairs`.
        loss_weight: the loss is multiplied by it.
        warmup_iters: the term is off for the first N iterations.
    """

    #: one teacher's queries are matched at a time
    teacher_ensembles = False

    def __init__(self,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 layers: LayerPairs = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        if not isinstance(head, str) or not (
                teacher_head is None or isinstance(teacher_head, str)):
            raise TypeError('head and teacher_head are module paths such as '
                            f'"bbox_head"; got {head!r}, {teacher_head!r}.')
        if not (layers is None or layers == 'last'
                or isinstance(layers, (list, tuple))):
            raise TypeError(
                'layers is None, "last" or a list of (student, teacher) '
                f'decoder layer indices; got {layers!r}.')
        super().__init__(
            student=dict(path=head, record='calls', methods=STUDENT_METHODS),
            teacher=dict(path=teacher_head or head, record='calls',
                         methods=TEACHER_METHODS),
            loss_weight=loss_weight, warmup_iters=warmup_iters)
        self.layers = layers
        self.layer_pairs = None
        self.families: Dict[str, str] = {}

    def parse_record(self, value: Any, side: str) -> MethodCalls:
        return as_method_calls(value, side, self.name)

    def _forward_call(self, calls: MethodCalls, side: str):
        spec = self.student_spec if side == 'student' else self.teacher_spec
        try:
            return calls.last('forward')
        except KeyError as err:
            raise RuntimeError(
                f'Term {self.name!r}: the {side} head {spec.path!r} did not '
                f'run its forward: {err}') from err

    def setup(self, student_calls: MethodCalls, teacher_calls: MethodCalls,
              student_model: nn.Module) -> None:
        """Check the heads' families and classes; map decoder layers."""
        forward = self._forward_call(student_calls, 'student')
        t_forward = self._forward_call(teacher_calls, 'teacher')
        self.families = check_query_heads(forward.owner, t_forward.owner,
                                          self.name)
        self.layer_pairs = resolve_layer_pairs(
            self.layers, decoder_depth(forward.result),
            decoder_depth(t_forward.result), f'Term {self.name!r}')
        self.check_heads(forward.owner, t_forward.owner)

    def check_heads(self, student_head: nn.Module,
                    teacher_head: nn.Module) -> None:
        """Raise at build time when the heads do not suit the term."""

    def collect(self, student_calls: MethodCalls,
                teacher_calls: MethodCalls) -> QueryPredictions:
        """This step's :class:`QueryPredictions`, collected once for all
        terms reading the same records and layers."""
        if not student_calls.get('get_targets'):
            raise RuntimeError(
                f'Term {self.name!r}: the student head '
                f'{self.student_spec.path!r} did not call get_targets() in '
                'its loss, so there is no assignment to read.')
        cache = student_calls.last('get_targets').cache
        key = ('query_predictions', tuple(self.layer_pairs),
               id(teacher_calls.last('forward')))
        if key not in cache:
            cache[key] = collect_query_predictions(
                student_calls, teacher_calls, self.layer_pairs,
                self.families['student'])
        return cache[key]

    def compute(self, student_calls: MethodCalls,
                teacher_calls: MethodCalls,
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        return self.loss(self.collect(student_calls, teacher_calls))

    def loss(self, preds: QueryPredictions) -> torch.Tensor:
        """The unweighted loss from the collected predictions."""
        raise NotImplementedError
