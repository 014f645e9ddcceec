"""The base class of terms that put extra queries through DETR decoders."""
from typing import Dict, Optional, Sequence

import torch.nn as nn

from ..heads.query_points import decoding_family
from ..heads.query_views import check_query_heads
from ..recorders import MethodCalls
from ..slots import ModelSlot
from .base import DistillTerm, as_method_calls

DECODER_CALLS = dict(path='', record='calls', methods=('forward_decoder', ))


class DecoderQueryTerm(DistillTerm):
    """A term that runs extra queries through the student's (and the
    teacher's) DETR decoder on the step's encoder memory.

    It records both detectors' own ``forward_decoder`` call (the model
    itself is the recorded path, so the call's owner is the detector, with
    its query embeddings and head) and, at build time, reads both models'
    decoding families (:func:`~mmkd.heads.query_points.decoding_family`)
    and checks that their heads score the same classes the same way. Reads
    one teacher. Subclasses add their family requirements in
    :meth:`check_families` and implement :meth:`compute`.

    Args:
        head: the student's DETR head path. Default ``'bbox_head'``.
        teacher_head: the teacher's; defaults to ``head``.
        loss_weight: the term's weight.
        warmup_iters: the term is off for the first N iterations.
    """

    teacher_ensembles = False

    def __init__(self,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student=dict(DECODER_CALLS),
                         teacher=dict(DECODER_CALLS),
                         loss_weight=loss_weight, warmup_iters=warmup_iters)
        self.head = head
        self.teacher_head = teacher_head or head
        self.families: Dict[str, str] = {}

    def bind_models(self, student: nn.Module,
                    teachers: Sequence[ModelSlot]) -> None:
        teacher = self.single_teacher(teachers).module
        self.families = dict(
            student=decoding_family(student, self.head,
                                    f'Term {self.name!r}: the student'),
            teacher=decoding_family(teacher, self.teacher_head,
                                    f'Term {self.name!r}: the teacher'))
        self.check_families(self.families)
        check_query_heads(dict(student.named_modules())[self.head],
                          dict(teacher.named_modules())[self.teacher_head],
                          self.name)

    def check_families(self, families: Dict[str, str]) -> None:
        """Raise at build time when the pair's families do not suit."""

    def parse_record(self, value, side: str) -> MethodCalls:
        return as_method_calls(value, side, self.name)

    def setup(self, student_calls: MethodCalls, teacher_calls: MethodCalls,
              student_model: nn.Module) -> None:
        for side, calls in (('student', student_calls),
                            ('teacher', teacher_calls)):
            if not calls.get('forward_decoder'):
                raise RuntimeError(
                    f'Term {self.name!r}: the {side} did not call '
                    'forward_decoder() in its forward pass.')

    @staticmethod
    def module(detector: nn.Module, path: str) -> nn.Module:
        """``detector``'s submodule at ``path`` (its head)."""
        return dict(detector.named_modules())[path]
