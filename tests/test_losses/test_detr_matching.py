"""HungarianMatchingKD (DETRDistill's matching logits distillation) on
hand-computed queries."""
import math

import pytest
import torch

from mmkd.heads.query_views import QueryLayer
from mmkd.losses import HungarianMatchingKD


def _logit(p):
    return math.log(p / (1 - p))


def _h(p):
    """Binary entropy: BCE of a probability against itself."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _layer(cls_s, box_s, cls_t, box_t) -> QueryLayer:
    q = len(cls_s)
    return QueryLayer(
        student_layer=0, teacher_layer=0,
        cls_student=torch.tensor([cls_s]), box_student=torch.tensor([box_s]),
        cls_teacher=torch.tensor([cls_t]), box_teacher=torch.tensor([box_t]),
        labels=torch.zeros(1, q, dtype=torch.long),
        label_weights=torch.ones(1, q), bbox_targets=torch.zeros(1, q, 4),
        bbox_weights=torch.zeros(1, q, 4), num_pos=0)


# the teacher's three queries: (class probabilities, box cx, cy, w, h)
TEACHER = [([0.9, 0.1], [0.2, 0.2, 0.2, 0.2]),
           ([0.1, 0.8], [0.7, 0.7, 0.2, 0.2]),
           ([0.2, 0.2], [0.5, 0.2, 0.1, 0.1])]


def test_three_sigmoid_queries_match_and_distil_as_worked_out_by_hand():
    # student query 0 sits on teacher 2, query 1 on teacher 0 (moved 0.02
    # to the right), query 2 on teacher 1; each scores its teacher's
    # probabilities, so the class loss is the teacher's entropy
    order = [2, 0, 1]
    cls_s = [[_logit(p) for p in TEACHER[j][0]] for j in order]
    box_s = [list(TEACHER[j][1]) for j in order]
    box_s[1][0] += 0.02
    cls_t = [[_logit(p) for p in probs] for probs, _ in TEACHER]
    box_t = [box for _, box in TEACHER]
    layer = _layer(cls_s, box_s, cls_t, box_t)
    term = HungarianMatchingKD()

    rows, cols = term.match(layer.cls_student[0], layer.box_student[0],
                            layer.cls_teacher[0].sigmoid(),
                            layer.box_teacher[0], True)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == order

    cls = (sum(_h(p) for p in TEACHER[0][0]) / 2 +
           sum(_h(p) for p in TEACHER[1][0]) / 2 +
           sum(_h(p) for p in TEACHER[2][0]) / 2) / 3
    # the moved pair: L1 0.02; GIoU of two 0.2-wide boxes 0.02 apart:
    # intersection 0.18*0.2, union 0.044, enclosing box 0.22*0.2 = union
    giou = 0.18 * 0.2 / 0.044
    confidence = {0: 0.9, 1: 0.8, 2: 0.2}  # highest teacher probability
    norm = sum(confidence.values())
    box = (5 * 0.9 * 0.02 + 2 * 0.9 * (1 - giou)) / norm
    expected = 1.0 * cls + box
    preds = type('P', (), dict(layers=[layer], use_sigmoid=True))
    assert term.loss(preds).item() == pytest.approx(expected, rel=1e-5)

    # without score reweighting each pair counts alike
    plain = HungarianMatchingKD(score_reweight=False).loss(preds).item()
    assert plain == pytest.approx(
        cls + (5 * 0.02 + 2 * (1 - giou)) / 3, rel=1e-5)


def test_softmax_queries_distil_the_cross_entropy_to_the_teacher():
    # two classes and the background (last channel); the student's boxes
    # sit on the teacher's in reverse order
    t_logits = [[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]
    s_logits = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    box_t = [[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]]
    layer = _layer(s_logits, box_t[::-1], t_logits, box_t)

    def softmax(z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]
    expected_cls = 0.0
    for s, t in ((s_logits[0], t_logits[1]), (s_logits[1], t_logits[0])):
        p, q = softmax(t), softmax(s)
        expected_cls += -sum(a * math.log(b) for a, b in zip(p, q)) / 2
    preds = type('P', (), dict(layers=[layer], use_sigmoid=False))
    loss = HungarianMatchingKD(cls_weight=0.5).loss(preds).item()
    assert loss == pytest.approx(0.5 * expected_cls, rel=1e-5)


def test_layer_losses_add_up_and_gradients_reach_the_student_only():
    cls_t = [[_logit(p) for p in probs] for probs, _ in TEACHER]
    box_t = [box for _, box in TEACHER]
    layer = _layer([[0.0, 0.0]] * 3, [[0.5, 0.5, 0.3, 0.3]] * 3, cls_t,
                   box_t)
    layer.cls_student.requires_grad_(True)
    layer.box_student.requires_grad_(True)
    term = HungarianMatchingKD()
    one = term.loss(type('P', (), dict(layers=[layer], use_sigmoid=True)))
    two = term.loss(type('P', (), dict(layers=[layer, layer],
                                       use_sigmoid=True)))
    assert two.item() == pytest.approx(2 * one.item())
    one.backward()
    assert layer.cls_student.grad.abs().sum() > 0
    assert layer.box_student.grad.abs().sum() > 0
    assert layer.cls_teacher.grad is None


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match='l1_weight must be a finite number >= 0'):
        HungarianMatchingKD(l1_weight=-1)
