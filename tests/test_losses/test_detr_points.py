"""ConsistentPointsKD (KD-DETR's distillation points) on hand-computed
points."""
import math

import pytest
import torch

from mmkd.losses import ConsistentPointsKD
from mmkd.losses.detr_points import tempered_kl, uniform_boxes


def _logit(p):
    return math.log(p / (1 - p))


def _tempered_kl(s, t, temperature):
    """T² · mean_c p_c (log p_c − log q_c), p, q tempered softmaxes."""
    def softmax(z):
        e = [math.exp(v / temperature) for v in z]
        return [v / sum(e) for v in e]
    p, q = softmax(t), softmax(s)
    return temperature**2 * sum(
        a * (math.log(a) - math.log(b)) for a, b in zip(p, q)) / len(p)


def test_two_points_distil_as_worked_out_by_hand():
    # teacher: point 0 a confident class-0 object, point 1 background
    t_probs = [[0.8, 0.1], [0.05, 0.2]]
    cls_t = [[_logit(p) for p in probs] for probs in t_probs]
    cls_s = [[0.0, 0.0], [1.0, -1.0]]
    box_t = [[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.4]]
    # point 0: the student's box moved 0.02 right; point 1 exact
    box_s = [[0.32, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.4]]
    term = ConsistentPointsKD(temperature=2.0)
    loss = term.points_loss(torch.tensor([cls_s]), torch.tensor([box_s]),
                            torch.tensor([cls_t]), torch.tensor([box_t]),
                            use_sigmoid=True).item()

    w = [0.8, 0.2]  # the teacher's highest class probability per point
    cls = sum(wi * _tempered_kl(s, t, 2.0)
              for wi, s, t in zip(w, cls_s, cls_t))  # summed, not averaged
    l1 = [0.02 / 4, 0.0]  # mean over the four coordinates
    giou = [0.18 * 0.2 / 0.044, 1.0]  # 0.2-wide boxes 0.02 apart
    box = (5 * sum(wi * x for wi, x in zip(w, l1)) +
           2 * sum(wi * (1 - g) for wi, g in zip(w, giou))) / sum(w)
    assert loss == pytest.approx(cls + box, rel=1e-5)

    # equal outputs cost nothing
    same = term.points_loss(torch.tensor([cls_t]), torch.tensor([box_t]),
                            torch.tensor([cls_t]), torch.tensor([box_t]),
                            use_sigmoid=True).item()
    assert same == pytest.approx(0.0, abs=1e-6)


def test_softmax_heads_weight_by_the_best_foreground_probability():
    # two classes and the background (last channel)
    cls_t = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])
    cls_s = torch.zeros(1, 2, 3)
    box = torch.tensor([[[0.5, 0.5, 0.2, 0.2]] * 2])
    loss = ConsistentPointsKD(temperature=1.0).points_loss(
        cls_s, box, cls_t, box, use_sigmoid=False).item()
    e = math.exp(3.0)
    fg = [e / (e + 2), 1 / (e + 2)]  # point 1's best class is not its bg
    expected = sum(w * _tempered_kl([0, 0, 0], t, 1.0)
                   for w, t in zip(fg, cls_t[0].tolist()))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_tempered_kl_is_zero_on_equal_logits_and_scales_with_t_squared():
    z = torch.tensor([[1.0, -2.0, 0.5]])
    assert tempered_kl(z, z, 10.0).item() == pytest.approx(0.0, abs=1e-7)
    s = torch.tensor([[0.0, 0.0, 0.0]])
    manual = _tempered_kl([0, 0, 0], [1.0, -2.0, 0.5], 3.0)
    assert tempered_kl(s, z, 3.0).item() == pytest.approx(manual, rel=1e-5)


def test_general_points_cover_the_image_within_the_size_range():
    torch.manual_seed(0)
    boxes = uniform_boxes(2, 500, (0.1, 0.3), torch.zeros(1))
    assert boxes.shape == (2, 500, 4)
    assert boxes[..., :2].min() >= 0 and boxes[..., :2].max() <= 1
    assert boxes[..., :2].min() < 0.05 and boxes[..., :2].max() > 0.95
    assert boxes[..., 2:].min() >= 0.1 and boxes[..., 2:].max() <= 0.3


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_general=-1), 'num_general'),
    (dict(num_specific=1.5), 'num_specific'),
    (dict(num_general=0, num_specific=0), 'no point'),
    (dict(size_range=(0.5, 0.1)), 'size_range'),
    (dict(student_layers='first'), 'student_layers'),
    (dict(temperature=0), 'temperature'),
    (dict(giou_weight=-1), 'giou_weight'),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConsistentPointsKD(**kwargs)
