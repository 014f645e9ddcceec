"""What a head-level term sees: a dense head's predictions, prior by prior.

:class:`DensePredictions` holds, flattened over the batch and the FPN levels
(``N = images x priors``, mmdet's prior order: level, row, column, anchor),
the student's and the teacher's raw class and box outputs and the student's
own assignment of this step, as its head computed it in its loss.
"""
from dataclasses import dataclass, field, replace
from typing import Any, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch import Tensor

#: the fields that hold one row per prior
PRIOR_FIELDS = ('cls_student', 'cls_teacher', 'reg_student', 'reg_teacher',
                'priors', 'strides', 'labels', 'label_weights',
                'bbox_targets')


@dataclass
class DensePredictions:
    """Student and teacher outputs of a dense head, aligned prior by prior.

    Args:
        cls_student: (N, C) class logits of the student (C counts the
            background for softmax heads, last, as mmdet does).
        cls_teacher: (N, C) teacher class logits, detached.
        reg_student: (N, R) raw box outputs of the student (deltas, or
            ``4 * (reg_max + 1)`` distribution logits for GFL heads).
        reg_teacher: (N, R) the teacher's, detached, on the student's scale
            (e.g. FCOS distances normalised by the stride as in training).
        priors: (N, 4) anchors (``xyxy``) or (N, 2) points.
        strides: (N,) the stride of each prior's level.
        labels: (N,) assigned labels, ``num_classes`` for background.
        label_weights: (N,) classification weights (0: ignored prior).
        bbox_targets: (N, 4) regression targets as the head stores them.
        avg_factor: the normaliser of the head's own classification loss.
        num_classes: foreground classes.
        use_sigmoid: whether the head classifies with sigmoids.
        level_sizes: priors per image on each level.
        gt_instances: the ground truth of each image.
        view: the :class:`~mmkd.heads.views.DenseHeadView` that decodes.
        student_head: the student's head module (this step).
        teacher_head: the teacher's head module.
        cache: what terms derive from these predictions once a step and
            share (e.g. LD's valuable localization region).
    """
    cls_student: Tensor
    cls_teacher: Tensor
    reg_student: Tensor
    reg_teacher: Tensor
    priors: Tensor
    strides: Tensor
    labels: Tensor
    label_weights: Tensor
    bbox_targets: Tensor
    avg_factor: Union[float, Tensor]
    num_classes: int
    use_sigmoid: bool
    level_sizes: List[int]
    gt_instances: List[Any]
    view: Any
    student_head: nn.Module
    teacher_head: nn.Module
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_images(self) -> int:
        return len(self.gt_instances)

    @property
    def pos(self) -> Tensor:
        """(N,) bool: the student's positives of this step."""
        return (self.labels >= 0) & (self.labels < self.num_classes)

    @property
    def valid(self) -> Tensor:
        """(N,) bool: priors the head's classification loss counts."""
        return self.label_weights > 0

    def select(self, mask: Tensor) -> 'DensePredictions':
        """The predictions of the priors where ``mask`` (N,) is true.

        A term whose loss counts a few priors (the positives, a region)
        computes it on those rows only: the values and gradients are the
        ones of the full computation masked, at a fraction of its cost.
        Decoding and encoding still work on the selection; regions, which
        need the whole batch's priors, do not (compute them first). On a
        GPU the selection waits for the mask (one host synchronisation).

        Args:
            mask: (N,) bool over this batch's priors.
        """
        if mask.dtype != torch.bool or mask.shape != self.labels.shape:
            raise ValueError(
                f'select() takes a bool mask of shape '
                f'{tuple(self.labels.shape)}, got {mask.dtype} '
                f'{tuple(mask.shape)}.')
        index = mask.nonzero().squeeze(1)
        rows = {name: getattr(self, name).index_select(0, index)
                for name in PRIOR_FIELDS}
        return replace(self, **rows, level_sizes=[], cache={})

    def boxes(self, side: str = 'student') -> Tensor:
        """(N, 4) decoded ``xyxy`` boxes in pixels of one side."""
        return self.view.decode(self, self._reg(side), self._head(side))

    def offsets(self, side: str = 'student') -> Tensor:
        """(N, 4) box predictions in the encoding the head trains on."""
        return self.view.offsets(self, self._reg(side), self._head(side))

    def target_offsets(self) -> Tensor:
        """(N, 4) regression targets in that encoding (meaningful at
        positives only)."""
        return self.view.target_offsets(self)

    def target_boxes(self) -> Tensor:
        """(N, 4) the assigned gt boxes in pixels (at positives)."""
        return self.view.target_boxes(self)

    def _reg(self, side: str) -> Tensor:
        if side not in ('student', 'teacher'):
            raise ValueError(f'side must be "student" or "teacher", got '
                             f'{side!r}.')
        return self.reg_student if side == 'student' else self.reg_teacher

    def _head(self, side: str) -> Optional[nn.Module]:
        return self.student_head if side == 'student' else self.teacher_head


def mean_class_logits(logits: Sequence[Tensor], use_sigmoid: bool) -> Tensor:
    """Several teachers' (N, C) class logits as the logits of their mean
    probabilities (per-class sigmoids, or the softmax over C), at
    temperature 1."""
    stacked = torch.stack([t.float() for t in logits])
    if use_sigmoid:
        p = stacked.sigmoid().mean(0).clamp(1e-6, 1 - 1e-6)
        mean = torch.log(p) - torch.log1p(-p)
    else:
        mean = stacked.softmax(-1).mean(0).clamp(min=1e-12).log()
    return mean.to(logits[0].dtype)


def mean_teacher_predictions(preds: Sequence[DensePredictions]
                             ) -> DensePredictions:
    """One set of predictions whose teacher side is the ensemble of
    several teachers' (each collected against the same student step):
    class probabilities averaged (:func:`mean_class_logits`) and box
    outputs averaged in the head family's encoding (GFL: the edge
    distributions), see ``DenseHeadView.mean_teacher_reg``. The first
    teacher's head decodes the result."""
    first = preds[0]
    return replace(
        first,
        cls_teacher=mean_class_logits([p.cls_teacher for p in preds],
                                      first.use_sigmoid),
        reg_teacher=first.view.mean_teacher_reg(
            [p.reg_teacher for p in preds], first.teacher_head),
        cache={})
