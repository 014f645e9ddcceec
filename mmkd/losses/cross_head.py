"""CrossKD (Wang et al., CVPR 2024): the student's head features finish
their way through the teacher's head, and those cross-head predictions
mimic the teacher's own."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..heads.predictions import DensePredictions
from ..heads.views import flatten_levels
from ..recorders import MethodCalls
from ..registry import MODELS
from .dense_head_term import DenseHeadTerm
from .head_response import binary_kd, positive_count
from .localization import distribution_kl, has_area
from .statistics import mean_std, standardize

REG_LOSSES = ('kl', 'giou')


def match_channel_statistics(student: Tensor, teacher: Tensor,
                             eps: float = 1e-5) -> Tensor:
    """``student`` with each channel's mean and std over (N, H, W) set to
    the teacher's (the teacher's statistics detached)."""
    dims = (0, 2, 3)
    t_mean, t_std = mean_std(teacher.detach(), dims)
    return standardize(student, dims, eps=eps) * t_std + t_mean


@MODELS.register_module()
class CrossHeadKD(DenseHeadTerm):
    """CrossKD (Wang et al., CVPR 2024), reimplemented from the paper.

    The student head's features after its ``reuse_index``-th stacked conv
    (both branches, every level; the FPN features for 0) are renormalised
    to the teacher's per-channel mean and std at the same place, then run
    through the teacher head's remaining convs and predictors (frozen
    weights, gradients to the student). The cross-head predictions
    ``x`` mimic the teacher's ``t``:

    - classification: ``Σ_c BCE(x_c, σ(t_c))·|σ(x_c) − σ(t_c)|^β`` over the
      priors the student's classification loss counts, divided by its
      positives (:func:`~mmkd.losses.head_response.binary_kd`), weighted
      by ``cls_weight`` (1);
    - regression, weighted by the teacher's max class score ``w`` over the
      same priors and averaged with those weights: for GFL heads the
      edge-distribution KL at ``temperature`` 1 (``reg_loss='kl'``,
      ``reg_weight`` 4); otherwise ``1 − GIoU`` of the boxes decoded by the
      teacher's coder (``'giou'``, ``reg_weight`` 1). The weighted-mean
      normalisation is our choice (the paper does not state it); GIoU
      leaves out priors whose teacher box has no area.

    The paper reuses the teacher head from index 3 of 4 stacked convs.
    Reads the student's and the teacher's head (the teacher still computes
    no loss); supports RetinaHead, ATSSHead, GFLHead and FCOSHead.

    Args:
        reuse_index: stacked convs of the student kept before switching to
            the teacher's head, ``0 <= reuse_index <= stacked_convs``.
            Default 3.
        beta: β of the classification term. Default 1.
        cls_weight: weight of the classification term. Default 1.
        reg_weight: weight of the regression term; default 4 for ``'kl'``
            and 1 for ``'giou'``.
        reg_loss: ``'kl'`` or ``'giou'``; default ``'kl'`` for GFL heads,
            ``'giou'`` otherwise.
        temperature: of the distribution KL. Default 1.
        head: the student's dense head path. Default ``'bbox_head'``.
        teacher_head: the teacher's, defaults to ``head``.
        loss_weight: multiplies the sum. Default 1.
        warmup_iters: switched off for the first N iterations.

    Examples:
        >>> distill = dict(cross=dict(type='CrossHeadKD', reuse_index=3))
    """

    #: the student's features run through one teacher head
    teacher_ensembles = False

    def __init__(self,
                 reuse_index: int = 3,
                 beta: float = 1.0,
                 cls_weight: float = 1.0,
                 reg_weight: Optional[float] = None,
                 reg_loss: Optional[str] = None,
                 temperature: float = 1.0,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        if not isinstance(reuse_index, int) or reuse_index < 0:
            raise ValueError('reuse_index must be an int >= 0, got '
                             f'{reuse_index!r}.')
        if reg_loss is not None and reg_loss not in REG_LOSSES:
            raise ValueError(f'reg_loss must be one of {REG_LOSSES} or None, '
                             f'got {reg_loss!r}.')
        if beta < 0 or temperature <= 0:
            raise ValueError('need beta >= 0 and temperature > 0, got '
                             f'{beta}, {temperature}.')
        self.reuse_index = reuse_index
        self.feature_keys: Tuple[str, ...] = () if reuse_index == 0 else (
            f'cls_convs.{reuse_index - 1}.forward',
            f'reg_convs.{reuse_index - 1}.forward')
        super().__init__(head, teacher_head, loss_weight, warmup_iters,
                         extra_methods=self.feature_keys)
        self.beta = beta
        self.cls_weight = cls_weight
        self.reg_weight = reg_weight
        self.reg_loss = reg_loss
        self.temperature = temperature

    def check_heads(self, student_head, teacher_head) -> None:
        self.require_sigmoid(student_head, teacher_head)
        view = self.view
        if not view.supports_cross_head(teacher_head):
            raise TypeError(
                f'Term {self.name!r}: CrossHeadKD runs the rest of the '
                f'teacher head, which it can for RetinaHead, ATSSHead, '
                f'GFLHead and FCOSHead, not {type(teacher_head).__name__}.')
        for side, head in (('student', student_head),
                           ('teacher', teacher_head)):
            if len(head.cls_convs) < self.reuse_index:
                raise ValueError(
                    f'Term {self.name!r}: reuse_index={self.reuse_index} '
                    f'but the {side} head has {len(head.cls_convs)} '
                    'stacked convs.')
        if self.reg_loss is None:
            self.reg_loss = 'kl' if view.family == 'GFLHead' else 'giou'
        if self.reg_loss == 'kl' and view.family != 'GFLHead':
            raise TypeError(f'Term {self.name!r}: reg_loss="kl" needs GFL '
                            'heads (box distributions).')
        if self.reg_weight is None:
            self.reg_weight = 4.0 if self.reg_loss == 'kl' else 1.0

    def setup(self, student_calls: MethodCalls, teacher_calls: MethodCalls,
              student_model) -> None:
        super().setup(student_calls, teacher_calls, student_model)
        where = self.feature_keys or ('forward (input)', ) * 2
        for key, mine, theirs in zip(where, self._features(student_calls),
                                     self._features(teacher_calls)):
            shapes = [(tuple(s.shape), tuple(t.shape))
                      for s, t in zip(mine, theirs)]
            if len(mine) != len(theirs) or any(a != b for a, b in shapes):
                raise ValueError(
                    f'Term {self.name!r}: CrossHeadKD feeds the student\'s '
                    f'head features into the teacher\'s head, but at {key} '
                    f'their shapes differ (student, teacher per level): '
                    f'{shapes}. Use heads of the same width (feat_channels)'
                    ' and the same input size.')

    def _features(self, calls: MethodCalls) -> Tuple[List[Tensor],
                                                     List[Tensor]]:
        if not self.feature_keys:
            feats = list(calls.last('forward').args[0])
            return feats, feats
        cls_key, reg_key = self.feature_keys
        return ([c.result for c in calls[cls_key]],
                [c.result for c in calls[reg_key]])

    def compute(self, student_calls: MethodCalls,
                teacher_calls: MethodCalls,
                data_samples: Sequence[BaseDataElement]) -> Tensor:
        preds = self.collect(student_calls, teacher_calls)
        s_cls, s_reg = self._features(student_calls)
        t_cls, t_reg = self._features(teacher_calls)
        head = preds.teacher_head
        cls_maps, reg_maps = [], []
        for level, feats in enumerate(zip(s_cls, s_reg, t_cls, t_reg)):
            cls_map, reg_map = self.view.cross_head(
                head, match_channel_statistics(feats[0], feats[2]),
                match_channel_statistics(feats[1], feats[3]), level,
                self.reuse_index)
            cls_maps.append(cls_map)
            reg_maps.append(reg_map)
        cross_cls = flatten_levels(cls_maps, preds.cls_student.shape[1])
        cross_reg = flatten_levels(reg_maps, preds.reg_student.shape[1])
        return self.cross_loss(preds, cross_cls, cross_reg)

    def cross_loss(self, preds: DensePredictions, cross_cls: Tensor,
                   cross_reg: Tensor) -> Tensor:
        """The loss of the cross-head predictions against the teacher's."""
        valid = preds.valid
        cls = binary_kd(cross_cls, preds.cls_teacher, self.beta)
        cls = torch.where(valid, cls * preds.label_weights, cls.new_zeros(()))
        cls = cls.sum() / positive_count(preds.avg_factor)
        weight = preds.cls_teacher.sigmoid().max(1)[0] * valid
        if self.reg_loss == 'kl':
            reg = distribution_kl(cross_reg, preds.reg_teacher,
                                  preds.teacher_head.reg_max + 1,
                                  self.temperature).mean(1)
        else:
            boxes = preds.view.decode(preds, cross_reg, preds.teacher_head)
            teacher_boxes = preds.boxes('teacher').detach()
            weight = weight * has_area(teacher_boxes)
            reg = 1 - bbox_overlaps(boxes, teacher_boxes, mode='giou',
                                    is_aligned=True)
        reg = (reg * weight).sum() / weight.sum().clamp(min=1e-6)
        return self.cls_weight * cls + self.reg_weight * reg
