import math

import pytest
import torch

from mmkd.losses import (PixelwiseKD, class_balanced_mean,
                         pixelwise_kl_divergence, pixelwise_kl_map)


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


def test_class_balanced_mean_by_hand():
    # three pixels of class 0 (KL 1, 2, 3) and one of class 1 (KL 10):
    # class means 2 and 10, so 6 (the plain mean is 4)
    values = torch.tensor([[[1.0, 2.0], [3.0, 10.0]]])
    classes = torch.tensor([[[0, 0], [0, 1]]])
    assert class_balanced_mean(values, classes).item() == pytest.approx(6.0)
    # a pixel left out leaves its class's mean to the others
    valid = torch.tensor([[[True, True], [False, True]]])
    assert class_balanced_mean(values, classes, valid).item() == \
        pytest.approx((1.5 + 10.0) / 2)
    # nothing valid: zero, still connected to the graph
    values.requires_grad_()
    empty = class_balanced_mean(values, classes, torch.zeros_like(valid))
    assert empty.item() == 0.0 and empty.requires_grad


def test_class_balanced_term_weighs_each_teacher_class_alike():
    # pixel 0: the teacher says class 0; pixels 1-3: class 1
    teacher = torch.tensor([[4.0, 0.0, 0.0, 0.0],
                            [0.0, 4.0, 4.0, 4.0]]).reshape(1, 2, 1, 4)
    student = torch.randn(1, 2, 1, 4)
    kl = pixelwise_kl_map(student, teacher)[0, 0]
    term = PixelwiseKD('a', 'b', class_balanced=True)
    term.setup([student], [teacher], None)
    loss = term(student, teacher, [], iteration=0)
    assert loss.item() == pytest.approx(
        (kl[0].item() + kl[1:].mean().item()) / 2, rel=1e-5)


def _sample_with_labels(labels):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=labels[None])
    return sample


def test_label_resolution_compares_the_upsampled_maps_off_void():
    s, t = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    labels = torch.zeros(4, 4, dtype=torch.long)
    labels[0, 0] = 255  # void: left out
    term = PixelwiseKD('a', 'b', resolution='labels')
    term.setup([s], [t], None)
    loss = term(s, t, [_sample_with_labels(labels)], iteration=0)
    up = [torch.nn.functional.interpolate(x, size=(4, 4), mode='bilinear',
                                          align_corners=False)
          for x in (s, t)]
    kl = pixelwise_kl_map(*up)[0]
    assert loss.item() == pytest.approx(kl.flatten()[1:].mean().item(),
                                        rel=1e-5)
    # not the score-map comparison
    assert loss.item() != pytest.approx(pixelwise_kl_divergence(s, t).item())


def test_label_resolution_without_labels_says_what_to_change():
    term = PixelwiseKD('a', 'b', resolution='labels')
    term.name = 'logits'
    s = torch.randn(1, 3, 2, 2)
    term.setup([s], [s], None)
    with pytest.raises(ValueError, match=r"'logits'.*gt_sem_seg.*"
                       r"resolution='logits'"):
        term(s, s, [object()], iteration=0)


def test_unknown_resolution_is_a_build_error():
    with pytest.raises(ValueError, match=r"'logits', 'labels'.*'input'"):
        PixelwiseKD('a', 'b', resolution='input')
