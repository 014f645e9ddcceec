"""Head views: what head-level distillation terms read from mmdet heads.

A head-level term (:class:`~mmkd.losses.DenseHeadTerm`) reads, for every
prior of the
student's dense head, both models' class and box outputs aligned prior by
prior and the student's own assignment of the step
(:class:`DensePredictions`). It takes them from two method-call records:
the student head's ``forward`` and ``get_targets`` calls in its own loss
(no second assigner run, no head subclassing, the user's config
unchanged) and the teacher head's ``forward`` (tensor mode, no loss). A
view per head family (:mod:`.views`) flattens and decodes them; an
unsupported head or a teacher whose priors do not line up is an error at
build time. Writing a new term is writing its loss::

    @MODELS.register_module()
    class MyHeadKD(DenseHeadTerm):
        def loss(self, preds):
            kd = (preds.cls_student - preds.cls_teacher)**2
            return (kd.sum(1) * preds.pos).sum() / preds.pos.sum().clamp(
                min=1)

    distill = dict(mine=dict(type='MyHeadKD', head='bbox_head'))

Two-stage detectors: the RPN is a dense head (``head='rpn_head'``); the
R-CNN head's terms (:class:`RoIHeadTerm`, :mod:`.roi`) read the student's
sampled RoIs from its ``roi_head.bbox_head.loss_and_target`` call and let
the teacher's R-CNN head score those same RoIs on its own features.
"""
from .predictions import DensePredictions, mean_teacher_predictions
from .roi import RoIPredictions
from .views import (AnchorHeadView, ATSSHeadView, DenseHeadView,
                    FCOSHeadView, GFLHeadView, check_alignment,
                    supported_heads, view_for)

__all__ = ['DensePredictions', 'DenseHeadView', 'AnchorHeadView',
           'ATSSHeadView', 'GFLHeadView', 'FCOSHeadView', 'check_alignment',
           'supported_heads', 'view_for', 'RoIPredictions',
           'mean_teacher_predictions']
