"""NeuronSelectivityTransfer (Huang & Wang, 2017): values worked out by
hand for the three kernels, an independent NumPy reference (the squared
MMD written pair by pair), gradients, build-time errors and one loss()
through a distiller."""
import math

import numpy as np
import pytest
import torch

from conftest import tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import NeuronSelectivityTransfer, neuron_selectivity_loss


def _kernel(x, y, kernel, degree=2, coef=0.0, sigma=1.0):
    if kernel == 'linear':
        return float(x @ y)
    if kernel == 'poly':
        return float(x @ y + coef) ** degree
    return math.exp(-float(((x - y) ** 2).sum()) / (2 * sigma ** 2))


def _mmd_numpy(s, t, kernel, **kw):
    """Per image: channels as unit vectors, MMD² by explicit pairs."""
    total = 0.0
    for n in range(s.shape[0]):
        xs = [v / np.linalg.norm(v) for v in s[n].reshape(s.shape[1], -1)]
        xt = [v / np.linalg.norm(v) for v in t[n].reshape(t.shape[1], -1)]
        kss = np.mean([_kernel(a, b, kernel, **kw) for a in xs for b in xs])
        ktt = np.mean([_kernel(a, b, kernel, **kw) for a in xt for b in xt])
        kst = np.mean([_kernel(a, b, kernel, **kw) for a in xs for b in xt])
        total += kss + ktt - 2 * kst
    return total / s.shape[0]


# student channels (1, 0) and (0, 3) -> unit (1, 0), (0, 1); teacher one
# channel (1, 1) -> (1, 1)/√2
S = torch.tensor([[[[1., 0.]], [[0., 3.]]]])
T = torch.tensor([[[[1., 1.]]]])
HAND = {
    # k_ss: (1, 0, 0, 1)² -> 1/2; k_tt 1; k_st (1/√2)² = 1/2 twice
    'poly': 0.5 + 1 - 2 * 0.5,
    # ‖mean_s − t‖² = 2·(1/2 − 1/√2)² = 3/2 − √2
    'linear': 1.5 - math.sqrt(2),
    # ‖s1 − s2‖² = 2, ‖s − t‖² = 2 − √2, σ = 1
    'gaussian': (1 + math.exp(-1)) / 2 + 1
    - 2 * math.exp(-(2 - math.sqrt(2)) / 2),
}


@pytest.mark.parametrize('kernel', sorted(HAND))
def test_hand_values(kernel):
    got = neuron_selectivity_loss(S, T, kernel)
    assert got.item() == pytest.approx(HAND[kernel], rel=1e-6)


def test_term_default_is_poly_with_weight_50():
    term = NeuronSelectivityTransfer('a', 'b')
    assert (term.kernel, term.degree, term.coef, term.loss_weight) == \
        ('poly', 2, 0.0, 50.0)
    term.setup([S], [T], None)
    assert term(S, T, [], iteration=0).item() == pytest.approx(
        50 * HAND['poly'], rel=1e-6)


@pytest.mark.parametrize('kernel, kw', [
    ('poly', {}), ('poly', dict(degree=3, coef=0.5)), ('linear', {}),
    ('gaussian', dict(sigma=0.7))])
def test_matches_numpy_reference(kernel, kw):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64)
    t = torch.randn(2, 5, 2, 3, generator=g, dtype=torch.float64)
    got = neuron_selectivity_loss(s, t, kernel, **kw)
    assert got.item() == pytest.approx(
        _mmd_numpy(s.numpy(), t.numpy(), kernel, **kw), rel=1e-5)


def test_same_distribution_gives_zero():
    x = torch.randn(2, 4, 3, 3)
    # the same channels in another order and scale: the same distribution
    y = x[:, [2, 0, 3, 1]] * 3
    for kernel in HAND:
        assert neuron_selectivity_loss(x, y, kernel).item() == \
            pytest.approx(0, abs=1e-5)


def test_levels_summed_and_student_resized():
    g = torch.Generator().manual_seed(3)
    s = [torch.randn(2, 3, 8, 8, generator=g),
         torch.randn(2, 3, 2, 2, generator=g)]
    t = [torch.randn(2, 6, 4, 4, generator=g),
         torch.randn(2, 6, 2, 2, generator=g)]
    term = NeuronSelectivityTransfer('a', 'b', loss_weight=1.0)
    term.setup(s, t, None)
    resized = torch.nn.functional.interpolate(
        s[0], size=(4, 4), mode='bilinear', align_corners=False)
    expected = (_mmd_numpy(resized.numpy(), t[0].numpy(), 'poly')
                + _mmd_numpy(s[1].numpy(), t[1].numpy(), 'poly'))
    assert term.compute(s, t, []).item() == pytest.approx(expected,
                                                          rel=1e-5)


def test_gradient_reaches_the_student_only():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 6, 4, 4, requires_grad=True)
    neuron_selectivity_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize('bad, error, match', [
    (dict(kernel='rbf'), ValueError, 'kernel must'),
    (dict(degree=0), ValueError, 'degree must'),
    (dict(degree=1.5), ValueError, 'degree must'),
    (dict(coef=-1.0), ValueError, 'coef must'),
    (dict(coef=math.nan), ValueError, 'coef must'),
    (dict(sigma=0), ValueError, 'sigma must'),
    (dict(loss_weight=math.inf), ValueError, 'loss_weight'),
])
def test_bad_arguments_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        NeuronSelectivityTransfer('a', 'b', **bad)


def test_batch_mismatch_is_a_setup_error():
    term = NeuronSelectivityTransfer('a', 'b')
    with pytest.raises(ValueError, match='one batch'):
        term.setup([torch.zeros(2, 3, 2, 2)], [torch.zeros(1, 3, 2, 2)],
                   None)


def _random_batch(model, size):
    inputs, samples = make_probe_batch(model.student, size)
    return torch.randn_like(inputs), samples


def test_detection_distiller_end_to_end(det_teacher_ckpt):
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=det_teacher_ckpt),
        distill=dict(nst=dict(type='NeuronSelectivityTransfer',
                              student='neck', teacher='neck')),
        probe_size=(64, 64)).train()
    loss = model.loss(*_random_batch(model, (64, 64)))['loss_distill_nst']
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
        distill=dict(nst=dict(type='NeuronSelectivityTransfer',
                              student='decode_head.bottleneck',
                              teacher='decode_head.bottleneck')),
        probe_size=(32, 32)).train()
    loss = model.loss(*_random_batch(model, (32, 32)))['loss_distill_nst']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.student.decode_head.bottleneck.conv.weight.grad.abs()\
        .sum() > 0


def test_float32_under_autocast():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(2, 8, 4, 4, generator=g)
    t = torch.randn(2, 16, 4, 4, generator=g)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = neuron_selectivity_loss(s.bfloat16(), t)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(
        neuron_selectivity_loss(s.bfloat16().float(), t).item(), rel=1e-5)
