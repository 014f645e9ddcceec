"""R-CNN head terms of Chen et al. (NeurIPS 2017) on the student's RoIs.

The teacher's R-CNN head scores the student's sampled RoIs (see
:mod:`mmkd.heads.roi`), so both terms compare the two models on the same
boxes:

- :class:`RoIBackgroundWeightedSoftTargets`: the background-weighted soft
  cross-entropy of the classifier;
- :class:`RoITeacherBoundedRegression`: the teacher-bounded regression of
  the positive RoIs' box deltas.
"""
from typing import Optional

import torch
from torch import Tensor

from ..heads.roi import RoIPredictions
from ..registry import MODELS
from .head_response import check_soft_target_args, mixed_soft_target_loss
from .localization import teacher_bounded_l2
from .roi_head_term import RoIHeadTerm


@MODELS.register_module()
class RoIBackgroundWeightedSoftTargets(RoIHeadTerm):
    """Background-weighted soft targets on the R-CNN head (Chen et al.,
    NeurIPS 2017).

    On every sampled RoI of the student that its classification loss
    counts, ``L_soft = −Σ_c w_c·P_t,c·log P_s,c`` (softmax over the
    classes and the background, background weight ``w_0 = 1.5``, the
    others 1; temperature 1), ``P_t`` the teacher R-CNN's probabilities on
    the *same* RoI pooled from its own features. The paper trains
    ``μ·L_hard + (1 − μ)·L_soft``; the head's own ``L_hard`` stays as the
    user configured it, so the term returns ``(1 − μ)/μ · L_soft`` averaged
    over those RoIs (for μ = 0.5, the default, twice the paper's sum; μ
    is unverified), as :class:`~mmkd.losses.BackgroundWeightedSoftTargets`
    does for the RPN.

    Args:
        mu: μ in (0, 1]. Default 0.5.
        background_weight: w₀. Default 1.5.
        temperature: softening of both sides. Default 1 (the paper's).
        roi_head: the student's RoI head path. Default ``'roi_head'``.
        teacher_roi_head: the teacher's; defaults to ``roi_head``.
        teacher_features: what the teacher's RoI head pools from.
            Default ``'neck'``.
        loss_weight: multiplies the term. Default 1.
        warmup_iters: switched off for the first N iterations.

    Examples:
        >>> distill = dict(rcnn_soft=dict(
        ...     type='RoIBackgroundWeightedSoftTargets', mu=0.5,
        ...     background_weight=1.5))
    """

    def __init__(self,
                 mu: float = 0.5,
                 background_weight: float = 1.5,
                 temperature: float = 1.0,
                 roi_head: str = 'roi_head',
                 teacher_roi_head: Optional[str] = None,
                 teacher_features: str = 'neck',
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(roi_head, teacher_roi_head, teacher_features,
                         loss_weight, warmup_iters)
        check_soft_target_args(mu, background_weight, temperature)
        self.mu = mu
        self.background_weight = background_weight
        self.temperature = temperature

    def loss(self, preds: RoIPredictions) -> Tensor:
        return mixed_soft_target_loss(
            preds.cls_student.float(), preds.cls_teacher.float(),
            preds.valid, self.background_weight, False, self.temperature,
            self.mu)  # R-CNN heads classify with a softmax (checked)


@MODELS.register_module()
class RoITeacherBoundedRegression(RoIHeadTerm):
    """Teacher-bounded regression on the R-CNN head (Chen et al., NeurIPS
    2017).

    On the student's positive RoIs, with ``R_s``, ``R_t`` both models'
    deltas for the RoI's class (the teacher's from its own features on the
    same RoI) and ``y`` the target, all in the student's box coder's
    encoding (the two coders must be equal, checked at build)::

        L_b = ‖R_s − y‖²  if ‖R_s − y‖² + m > ‖R_t − y‖²,  else 0

    summed over the positives and divided by the number of sampled RoIs,
    the normaliser of the head's own box loss (``StandardRoIHead``'s
    ``loss_bbox``), so ``ν = loss_weight`` weighs it against that loss as
    the paper's ``L_reg = L_sL1 + ν·L_b`` does. m = 0.2 and ν = 0.5 are the
    values of re-implementations (the paper leaves them open).

    Args:
        margin: m. Default 0.2.
        roi_head: the student's RoI head path. Default ``'roi_head'``.
        teacher_roi_head: the teacher's; defaults to ``roi_head``.
        teacher_features: what the teacher's RoI head pools from.
            Default ``'neck'``.
        loss_weight: ν. Default 0.5.
        warmup_iters: switched off for the first N iterations.

    Examples:
        >>> distill = dict(rcnn_box=dict(
        ...     type='RoITeacherBoundedRegression', margin=0.2,
        ...     loss_weight=0.5))
    """

    def __init__(self,
                 margin: float = 0.2,
                 roi_head: str = 'roi_head',
                 teacher_roi_head: Optional[str] = None,
                 teacher_features: str = 'neck',
                 loss_weight: float = 0.5,
                 warmup_iters: int = 0) -> None:
        super().__init__(roi_head, teacher_roi_head, teacher_features,
                         loss_weight, warmup_iters)
        if margin < 0:
            raise ValueError(f'margin must be >= 0, got {margin}.')
        self.margin = margin

    def loss(self, preds: RoIPredictions) -> Tensor:
        bounded = teacher_bounded_l2(preds.reg_student.float(),
                                     preds.reg_teacher.float(),
                                     preds.target_deltas.detach().float(),
                                     self.margin)
        bounded = torch.where(preds.pos, bounded, bounded.new_zeros(()))
        return bounded.sum() / max(preds.num_rois, 1)
