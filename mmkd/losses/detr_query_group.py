"""DETRDistill's query-prior assignment distillation: the teacher's
queries as an extra query group of the student, supervised with the
teacher's assignment."""
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..heads.query_points import (BOX_QUERY_FAMILIES, decode_points,
                                  decoder_arguments, embeddings_as_queries,
                                  head_outputs, own_query_boxes, run_decoder)
from ..recorders import MethodCalls
from ..registry import MODELS
from .detr_decoder_term import DecoderQueryTerm


@contextmanager
def fixed_targets(head: nn.Module, targets: tuple) -> Iterator[None]:
    """``head.get_targets`` returns ``targets`` inside the block, whatever
    it is given; what was on the instance before (a recorder's wrapper or
    nothing) is put back after."""
    before = head.__dict__.get('get_targets')
    object.__setattr__(head, 'get_targets', lambda *args, **kwargs: targets)
    try:
        yield
    finally:
        if before is None:
            del head.__dict__['get_targets']
        else:
            object.__setattr__(head, 'get_targets', before)


@MODELS.register_module()
class QueryPriorAssignmentKD(DecoderQueryTerm):
    """Query-prior assignment distillation (DETRDistill, Chang et al.,
    ICCV 2023), reimplemented from the paper.

    A young student's Hungarian assignment flips from step to step; a
    trained teacher's is stable. The teacher's queries of the step (their
    boxes: DAB-DETR anchors, DINO proposals) run through the *student's*
    decoder as an extra query group, and that group is trained with the
    student head's own DETR loss (its ``loss_by_feat_single``: class,
    L1 and GIoU at the head's weights, every decoder layer) under the
    teacher's assignment: the ground truth matched to the teacher's own
    last-layer predictions by the teacher head's matcher. The group is a
    separate decoder pass, so its queries and the student's own never
    attend to each other (the group attention mask of the authors' code)
    and the student's own queries, matching and loss are untouched.

    The teacher's queries become the student's as
    :mod:`mmkd.heads.query_points` makes them: from the teacher's query
    boxes when both models make queries from boxes (DAB-DETR, DINO,
    two-stage Deformable DETR, in any pairing), or, as the authors' code
    does, the teacher's query embeddings themselves when both are of the
    same embedding family (DETR, Conditional DETR, Deformable DETR) and
    width (256 for every ResNet depth at mmdet's defaults, so R101 → R50
    and → R18 pairs qualify). Other pairings are a build-time error.
    Reads one teacher.

    Args:
        head: the student's DETR head path. Default ``'bbox_head'``.
        teacher_head: the teacher's; defaults to ``head``.
        loss_weight: the term's weight; 1.0 (the group counts as the
            student's own queries do).
        warmup_iters: the term is off for the first N iterations.

    Examples:
        >>> distill = dict(
        ...     group=dict(type='QueryPriorAssignmentKD', loss_weight=1.0))
    """

    def __init__(self,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(head=head, teacher_head=teacher_head,
                         loss_weight=loss_weight, warmup_iters=warmup_iters)
        self.by_boxes = True

    def check_families(self, families) -> None:
        """Box queries on both sides, or one embedding family."""
        boxes = [f in BOX_QUERY_FAMILIES for f in families.values()]
        if not all(boxes) and families['student'] != families['teacher']:
            raise TypeError(
                f'Term {self.name!r}: the student is a '
                f'{families["student"]}, the teacher a '
                f'{families["teacher"]}. The teacher\'s queries can '
                "join the student's decoder as boxes (both of "
                f'{", ".join(BOX_QUERY_FAMILIES)}) or as learned query '
                'embeddings (both of the same family and width).')
        self.by_boxes = all(boxes)

    def teacher_assignment(self, teacher_call,
                           data_samples: Sequence[BaseDataElement]):
        """The targets the teacher head's matcher gives its own last-layer
        predictions, one per teacher query."""
        detector = teacher_call.owner
        head = self.module(detector, self.teacher_head)
        outputs = teacher_call.result
        with torch.no_grad():
            cls, box = head_outputs(head, outputs)
            targets = type(head).get_targets(
                head, list(cls[-1]), list(box[-1]),
                [s.gt_instances for s in data_samples],
                [s.metainfo for s in data_samples])
        return targets

    def compute(self, student_calls: MethodCalls,
                teacher_calls: MethodCalls,
                data_samples: Sequence[BaseDataElement]) -> Tensor:
        return sum(sum(layer) for layer in self.group_losses(
            student_calls, teacher_calls, data_samples))

    def group_losses(self, student_calls: MethodCalls,
                     teacher_calls: MethodCalls,
                     data_samples: Sequence[BaseDataElement]) -> list:
        """Per student decoder layer, the head's loss terms of the teacher
        query group under the teacher's assignment (class, L1, GIoU)."""
        s_call = student_calls.last('forward_decoder')
        t_call = teacher_calls.last('forward_decoder')
        targets = self.teacher_assignment(t_call, data_samples)
        head = self.module(s_call.owner, self.head)
        if self.by_boxes:
            boxes = own_query_boxes(self.families['teacher'], t_call)
            cls, box = decode_points(head, self.families['student'], s_call,
                                     boxes)
        else:
            args = embeddings_as_queries(
                decoder_arguments(s_call), decoder_arguments(t_call),
                f'Term {self.name!r}')
            cls, box = run_decoder(head, s_call, args)
        gts = [s.gt_instances for s in data_samples]
        metas = [s.metainfo for s in data_samples]
        with fixed_targets(head, targets):
            return [type(head).loss_by_feat_single(
                head, cls[layer], box[layer], gts, metas)
                for layer in range(cls.shape[0])]
