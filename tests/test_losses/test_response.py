import math

import pytest
import torch

from mmkd.losses import PixelwiseKD, pixelwise_kl_divergence


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


@pytest.mark.parametrize('temperature', [1.0, 2.0, 4.0])
def test_pixelwise_kl_by_hand(temperature):
    # two pixels, two classes
    zs = [[0.0, 0.0], [1.0, -1.0]]
    zt = [[math.log(3.0), 0.0], [0.0, 2.0]]
    expected = temperature ** 2 * sum(
        _kl(_softmax([v / temperature for v in t]),
            _softmax([v / temperature for v in s]))
        for s, t in zip(zs, zt)) / 2  # mean over the two pixels
    student = torch.tensor(zs).t().reshape(1, 2, 1, 2)
    teacher = torch.tensor(zt).t().reshape(1, 2, 1, 2)
    loss = pixelwise_kl_divergence(student, teacher, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_equal_logits_give_zero():
    z = torch.randn(2, 5, 3, 3)
    assert pixelwise_kl_divergence(z, z.clone(), 2.0).item() == \
        pytest.approx(0.0, abs=1e-6)


def test_term_resizes_the_student_map():
    term = PixelwiseKD('a', 'b', loss_weight=10.0)
    s, t = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 8, 8)
    term.setup([s], [t], None)
    loss = term(s, t, [], iteration=0)
    up = torch.nn.functional.interpolate(s, size=(8, 8), mode='bilinear',
                                         align_corners=False)
    assert loss.item() == pytest.approx(
        10.0 * pixelwise_kl_divergence(up, t).item())


def test_class_mismatch_is_a_build_error():
    term = PixelwiseKD('decode_head.conv_seg', 'decode_head.conv_seg')
    term.name = 'logits'
    with pytest.raises(ValueError, match=r"'logits'.*\(1, 4, 8, 8\).*"
                       r"\(1, 19, 8, 8\)"):
        term.setup([torch.zeros(1, 4, 8, 8)], [torch.zeros(1, 19, 8, 8)],
                   None)


def test_half_precision_inputs_are_computed_in_float32():
    s = torch.randn(1, 3, 2, 2).half()
    t = torch.randn(1, 3, 2, 2).half()
    loss = pixelwise_kl_divergence(s, t, 1.0)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        pixelwise_kl_divergence(s.float(), t.float()).item())


@pytest.mark.parametrize('weight', [1.0, 10.0])
def test_cross_entropy_plus_weighted_kl_pulls_the_student_to_the_mix(weight):
    # The reason SKD's weight 10 hurts a student near its teacher
    # (docs/evidence.md): the minimiser over the student's logits of
    # CE(y) + w * KL(p_t || p_s) is p_s = (y + w * p_t) / (1 + w), so at
    # w = 10 the labels keep 1/11 of the target and a teacher's mistake
    # at a pixel becomes the student's.
    label = 0
    p_teacher = torch.tensor([0.3, 0.6, 0.1])  # the teacher is wrong here
    teacher = p_teacher.log().reshape(1, 3, 1, 1)
    y = torch.nn.functional.one_hot(torch.tensor(label), 3).float()
    optimum = (y + weight * p_teacher) / (1 + weight)
    student = optimum.log().reshape(1, 3, 1, 1).requires_grad_()
    loss = torch.nn.functional.cross_entropy(
        student, torch.tensor([[[label]]])) + weight * \
        pixelwise_kl_divergence(student, teacher)
    loss.backward()
    assert student.grad.abs().max().item() < 1e-6
    # and the student's prediction at that pixel follows the teacher's
    # mistake only when the KL dominates
    assert (optimum.argmax().item() == label) == (weight == 1.0)
