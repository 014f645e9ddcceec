"""AttentionTransfer (Zagoruyko & Komodakis, ICLR 2017): a value worked
out by hand, an independent NumPy reference (the authors' formula),
gradients, build-time errors and one loss() through a distiller."""
import math

import numpy as np
import pytest
import torch

from conftest import tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import AttentionTransfer, attention_transfer_loss


def _at_numpy(s, t, p=2.0):
    """The authors' utils.at / at_loss, written with loops in NumPy:
    per image q = Σ_c |x_c|^p / ‖·‖₂, then mean over images and
    positions of (q_s − q_t)²."""
    total, count = 0.0, 0
    for n in range(s.shape[0]):
        qs = (np.abs(s[n]) ** p).sum(0).ravel()
        qt = (np.abs(t[n]) ** p).sum(0).ravel()
        qs = qs / np.sqrt((qs ** 2).sum())
        qt = qt / np.sqrt((qt ** 2).sum())
        for a, b in zip(qs, qt):
            total += (a - b) ** 2
            count += 1
    return total / count


def test_hand_value():
    # student: channels (1, 0) and (1, 2) at two positions -> Q = (2, 4),
    # normalised (1, 2)/√5; teacher (3, 0) -> Q = (9, 0) -> (1, 0).
    # Σ (q_s − q_t)² = (1/√5 − 1)² + 4/5 = 2 − 2/√5; mean over 2
    # positions: 1 − 1/√5
    s = torch.tensor([[[[1., 0.]], [[1., 2.]]]])
    t = torch.tensor([[[[3., 0.]]]])
    expected = 1 - 1 / math.sqrt(5)
    assert attention_transfer_loss(s, t).item() == pytest.approx(expected)
    term = AttentionTransfer('a', 'b')
    term.setup([s], [t], None)
    assert term(s, t, [], iteration=0).item() == pytest.approx(
        1000 * expected, rel=1e-6)  # β = 1000 by default


@pytest.mark.parametrize('p', [2.0, 1.0, 4.0])
def test_matches_numpy_reference(p):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 4, 3, 5, generator=g, dtype=torch.float64)
    t = torch.randn(3, 7, 3, 5, generator=g, dtype=torch.float64)
    assert attention_transfer_loss(s, t, p).item() == pytest.approx(
        _at_numpy(s.numpy(), t.numpy(), p), rel=1e-5)


def test_levels_summed_and_student_resized():
    g = torch.Generator().manual_seed(1)
    s = [torch.randn(2, 3, 8, 8, generator=g),
         torch.randn(2, 3, 4, 4, generator=g)]
    t = [torch.randn(2, 5, 4, 4, generator=g),
         torch.randn(2, 5, 4, 4, generator=g)]
    term = AttentionTransfer('a', 'b', loss_weight=1.0)
    term.setup(s, t, None)
    # level 0: the student's 8x8 attention map resized to 4x4 first
    q0 = torch.nn.functional.interpolate(
        s[0].pow(2).sum(1, keepdim=True), size=(4, 4), mode='bilinear',
        align_corners=False)
    qs = torch.nn.functional.normalize(q0.flatten(1), dim=1)
    qt = torch.nn.functional.normalize(t[0].pow(2).sum(1).flatten(1), dim=1)
    level0 = (qs - qt).pow(2).mean().item()
    level1 = _at_numpy(s[1].numpy(), t[1].numpy())
    assert term.compute(s, t, []).item() == pytest.approx(
        level0 + level1, rel=1e-5)


def test_identical_maps_give_zero_and_scale_is_ignored():
    x = torch.randn(2, 3, 4, 4)
    assert attention_transfer_loss(x, x).item() == pytest.approx(0,
                                                                 abs=1e-7)
    assert attention_transfer_loss(5 * x, x).item() == pytest.approx(
        0, abs=1e-7)


def test_gradient_reaches_the_student_only():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 6, 4, 4, requires_grad=True)
    attention_transfer_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize('bad, error, match', [
    (dict(p=0), ValueError, 'p must'),
    (dict(p='2'), TypeError, 'p must'),
    (dict(loss_weight=-1.0), ValueError, 'loss_weight'),
])
def test_bad_arguments_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        AttentionTransfer('a', 'b', **bad)


def test_shape_errors_at_setup():
    term = AttentionTransfer('a', 'b')
    with pytest.raises(ValueError, match='level'):
        term.setup([torch.zeros(1, 2, 2, 2)] * 2, [torch.zeros(1, 2, 2, 2)],
                   None)
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        term.setup([torch.zeros(1, 2, 2)], [torch.zeros(1, 2, 2)], None)


def _random_batch(model, size):
    inputs, samples = make_probe_batch(model.student, size)
    return torch.randn_like(inputs), samples


def test_detection_distiller_end_to_end(det_teacher_ckpt):
    """Student neck 16 channels, teacher 32: no adaptor needed."""
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=det_teacher_ckpt),
        distill=dict(at=dict(type='AttentionTransfer', student='neck',
                             teacher='neck')),
        probe_size=(64, 64)).train()
    assert not list(model.distill_terms.at.parameters())
    loss = model.loss(*_random_batch(model, (64, 64)))['loss_distill_at']
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_segmentation_distiller_end_to_end(seg_teacher_ckpt):
    model = Distiller(
        student=tiny_pspnet(8, 16),
        teacher=dict(config=dict(default_scope='mmseg',
                                 model=tiny_pspnet(16, 32)),
                     checkpoint=seg_teacher_ckpt),
        distill=dict(at=dict(type='AttentionTransfer', student='backbone',
                             teacher='backbone')),
        probe_size=(32, 32)).train()
    loss = model.loss(*_random_batch(model, (32, 32)))['loss_distill_at']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.student.backbone.layer1[0].conv1.weight.grad is not None
