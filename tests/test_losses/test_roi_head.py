"""R-CNN terms of Chen et al. (2017) against values computed by hand on
tiny RoI predictions (the teacher's pass itself is tested in
tests/test_heads/test_roi.py)."""
import math
from types import SimpleNamespace

import torch
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

from mmkd.heads.roi import RoIPredictions, class_deltas
from mmkd.losses import RoIHeadTerm
from mmkd.losses import (RoIBackgroundWeightedSoftTargets,
                         RoITeacherBoundedRegression)


def predictions(cls_s=None, cls_t=None, reg_s=None, reg_t=None,
                labels=(0, 1, 2), label_weights=(1., 1., 1.),
                targets=None) -> RoIPredictions:
    """Three RoIs, two classes plus the background (label 2)."""
    n = len(labels)
    return RoIPredictions(
        rois=torch.zeros(n, 5),
        cls_student=cls_s if cls_s is not None else torch.zeros(n, 3),
        cls_teacher=cls_t if cls_t is not None else torch.zeros(n, 3),
        reg_student=reg_s if reg_s is not None else torch.zeros(n, 4),
        reg_teacher=reg_t if reg_t is not None else torch.zeros(n, 4),
        labels=torch.tensor(labels),
        label_weights=torch.tensor(label_weights),
        target_deltas=targets if targets is not None else torch.zeros(n, 4),
        num_classes=2, student_head=None,
        teacher_head=None)


def soft_ce(student, teacher, w0):
    """``-sum_c w_c p_t,c log p_s,c`` with plain Python (background
    last)."""
    zs = sum(math.exp(v) for v in student)
    zt = sum(math.exp(v) for v in teacher)
    weights = [1.0] * (len(student) - 1) + [w0]
    return -sum(w * math.exp(t) / zt * math.log(math.exp(s) / zs)
                for w, s, t in zip(weights, student, teacher))


def test_soft_targets_match_hand_computed_values():
    cls_s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0],
                          [0.0, 0.0, 3.0]])
    cls_t = torch.tensor([[2.0, -1.0, 0.0], [0.0, 1.0, 1.0],
                          [-1.0, 0.5, 2.0]])
    # the third RoI is not counted by the classification loss
    preds = predictions(cls_s, cls_t, label_weights=(1., 1., 0.))
    term = RoIBackgroundWeightedSoftTargets(mu=0.25, background_weight=1.5)
    expected = (soft_ce(cls_s[0].tolist(), cls_t[0].tolist(), 1.5) +
                soft_ce(cls_s[1].tolist(), cls_t[1].tolist(), 1.5)) / 2
    expected *= (1 - 0.25) / 0.25
    assert math.isclose(float(term.loss(preds)), expected, rel_tol=1e-5)


def test_soft_targets_temperature_and_background_weight():
    cls_s = torch.tensor([[1.0, 0.0, -1.0]])
    cls_t = torch.tensor([[2.0, -1.0, 0.0]])
    preds = predictions(cls_s, cls_t, labels=(2, ), label_weights=(1., ))
    term = RoIBackgroundWeightedSoftTargets(mu=0.5, background_weight=3.0,
                                            temperature=2.0)
    expected = soft_ce([0.5, 0.0, -0.5], [1.0, -0.5, 0.0], 3.0)
    assert math.isclose(float(term.loss(preds)), expected, rel_tol=1e-5)


def test_soft_targets_gradient_is_the_weighted_softmax_residual():
    """d/ds of -sum_c w_c p_t,c log softmax(s)_c is
    softmax(s)·sum_c w_c p_t,c - w ⊙ p_t (one RoI, mu = 0.5)."""
    cls_s = torch.tensor([[0.3, -0.2, 0.1]], requires_grad=True)
    cls_t = torch.tensor([[1.0, 0.0, -1.0]])
    preds = predictions(cls_s, cls_t, labels=(0, ), label_weights=(1., ))
    RoIBackgroundWeightedSoftTargets(background_weight=1.5).loss(
        preds).backward()
    w = torch.tensor([1.0, 1.0, 1.5])
    p_t, p_s = cls_t.softmax(1), cls_s.detach().softmax(1)
    expected = p_s * (w * p_t).sum() - w * p_t
    torch.testing.assert_close(cls_s.grad, expected)


def test_bounded_regression_matches_hand_computed_values():
    # RoI 0 (positive): student err 1 + 0.2 > teacher err 0.25: counted.
    # RoI 1 (positive): student err 0.04 + 0.2 < teacher err 1: zero.
    # RoI 2 (background): left out whatever its errors.
    reg_s = torch.tensor([[1.0, 0, 0, 0], [0.2, 0, 0, 0], [5.0, 0, 0, 0]])
    reg_t = torch.tensor([[0.5, 0, 0, 0], [1.0, 0, 0, 0], [9.0, 0, 0, 0]])
    preds = predictions(reg_s=reg_s, reg_t=reg_t)
    loss = RoITeacherBoundedRegression(margin=0.2).loss(preds)
    # summed over positives, divided by the 3 sampled RoIs (the head's own
    # box-loss normaliser)
    assert math.isclose(float(loss), 1.0 / 3, rel_tol=1e-6)


def test_bounded_regression_zero_case_and_gradient():
    target = torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 3)
    # every positive better than the teacher by more than m: zero, and
    # no gradient
    reg_s = (target + 0.01).requires_grad_()
    reg_t = target + 1.0
    preds = predictions(reg_s=reg_s, reg_t=reg_t, targets=target)
    loss = RoITeacherBoundedRegression(margin=0.2).loss(preds)
    loss.backward()
    assert float(loss) == 0 and float(reg_s.grad.abs().sum()) == 0
    # worse than the teacher: 2 (R_s - y) / N on the positives only
    reg_s = (target + torch.tensor([0.5, -0.5, 0.0, 1.0])).requires_grad_()
    preds = predictions(reg_s=reg_s, reg_t=target.clone(), targets=target)
    loss = RoITeacherBoundedRegression(margin=0.2).loss(preds)
    loss.backward()
    assert math.isclose(float(loss), 2 * 1.5 / 3, rel_tol=1e-6)
    expected = 2 * (reg_s.detach() - target) / 3
    expected[2] = 0  # background
    torch.testing.assert_close(reg_s.grad, expected)


def test_class_deltas_picks_each_rois_label():
    per_class = torch.arange(3 * 8, dtype=torch.float).reshape(3, 8)
    picked = class_deltas(per_class, torch.tensor([1, 0, 2]), 2)
    # background (label 2) takes class 0's deltas, later masked out
    torch.testing.assert_close(
        picked, torch.stack([per_class[0, 4:], per_class[1, :4],
                             per_class[2, :4]]))
    agnostic = torch.randn(3, 4)
    assert class_deltas(agnostic, torch.tensor([1, 0, 2]), 2) is agnostic


def test_decoded_box_targets_are_encoded_by_the_coder():
    """Heads with ``reg_decoded_bbox`` store gt boxes; the terms compare
    deltas, so the targets are encoded (negatives by their own RoI)."""
    coder = DeltaXYWHBBoxCoder(target_stds=[0.1, 0.1, 0.2, 0.2])
    rois = torch.tensor([[0, 10., 10., 30., 40.], [0, 0., 0., 8., 8.]])
    gt = torch.tensor([[12., 8., 34., 44.], [0., 0., 0., 0.]])
    pos = torch.tensor([True, False])
    head = SimpleNamespace(reg_decoded_bbox=True, bbox_coder=coder)
    deltas = RoIHeadTerm._target_deltas(head, rois, gt, pos)
    # by hand: centre (20, 25) size (20, 30) -> centre (23, 26) size
    # (22, 36), divided by the stds
    expected = torch.tensor([3 / 20 / 0.1, 1 / 30 / 0.1,
                             math.log(22 / 20) / 0.2,
                             math.log(36 / 30) / 0.2])
    torch.testing.assert_close(deltas[0], expected)
    assert torch.equal(deltas[1], torch.zeros(4))
    head.reg_decoded_bbox = False
    assert RoIHeadTerm._target_deltas(head, rois, gt, pos) is gt
