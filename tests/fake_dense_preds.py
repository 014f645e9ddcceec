"""DensePredictions built by hand, for loss tests on tiny tensors."""
from types import SimpleNamespace

import torch

from mmkd.heads import DensePredictions


class IdentityView:
    """Offsets and boxes are the raw regressions, targets the stored
    ones."""

    def decode(self, preds, reg, head):
        return reg

    def offsets(self, preds, reg, head):
        return reg

    def target_offsets(self, preds):
        return preds.bbox_targets


def fake_preds(cls_student, cls_teacher=None, reg_student=None,
               reg_teacher=None, labels=None, label_weights=None,
               bbox_targets=None, priors=None, num_classes=None,
               use_sigmoid=True, gt_boxes=(), level_sizes=None,
               head=None, view=None, avg_factor=1.0):
    n = cls_student.shape[0]
    num_classes = num_classes or cls_student.shape[1]
    zeros4 = torch.zeros(n, 4)
    return DensePredictions(
        cls_student=cls_student,
        cls_teacher=cls_student.detach() if cls_teacher is None
        else cls_teacher,
        reg_student=zeros4 if reg_student is None else reg_student,
        reg_teacher=zeros4 if reg_teacher is None else reg_teacher,
        priors=zeros4 if priors is None else priors,
        strides=torch.full((n, ), 8.0),
        labels=torch.full((n, ), num_classes) if labels is None
        else labels,
        label_weights=torch.ones(n) if label_weights is None
        else label_weights,
        bbox_targets=zeros4 if bbox_targets is None else bbox_targets,
        avg_factor=avg_factor,
        num_classes=num_classes,
        use_sigmoid=use_sigmoid,
        level_sizes=level_sizes or [n],
        gt_instances=[SimpleNamespace(
            bboxes=torch.tensor(gt_boxes, dtype=torch.float).reshape(-1, 4))],
        view=view or IdentityView(),
        student_head=head or SimpleNamespace(),
        teacher_head=head or SimpleNamespace())
