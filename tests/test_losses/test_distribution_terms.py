"""CWD, PKD and DIST against values computed independently, element by
element (loops, NumPy), on tiny tensors; and each term end to end in a
distiller."""
import math

import numpy as np
import pytest
import torch

from conftest import tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import (ChannelWiseKD, DISTKD, PearsonFeatureKD,
                         channel_wise_divergence, dist_loss,
                         pearson_feature_loss)


def _cwd_by_loops(s, t, tau):
    n, c = s.shape[:2]
    total = 0.0
    for i in range(n):
        for j in range(c):
            ps = np.exp(s[i, j].ravel() / tau)
            ps /= ps.sum()
            pt = np.exp(t[i, j].ravel() / tau)
            pt /= pt.sum()
            total += float((pt * np.log(pt / ps)).sum())
    return tau ** 2 * total / (n * c)


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_channel_wise_divergence_matches_loops(tau):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64)
    t = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64)
    got = channel_wise_divergence(s, t, tau)
    assert got.item() == pytest.approx(_cwd_by_loops(s.numpy(), t.numpy(),
                                                     tau), rel=1e-5)


def test_channel_wise_divergence_hand_value():
    """One channel, two locations: teacher (0, ln 3) -> p_t = (1/4, 3/4);
    student (0, 0) -> p_s = (1/2, 1/2). KL = 1/4 ln(1/2) + 3/4 ln(3/2)."""
    t = torch.tensor([0.0, math.log(3.0)]).reshape(1, 1, 1, 2)
    s = torch.zeros(1, 1, 1, 2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert channel_wise_divergence(s, t).item() == pytest.approx(expected)
    assert channel_wise_divergence(t, t).item() == pytest.approx(0, abs=1e-7)


def test_pearson_feature_loss_is_one_minus_correlation():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 3, 4, 4, generator=g)
    t = torch.randn(2, 3, 4, 4, generator=g)
    r = [np.corrcoef(s[:, c].numpy().ravel(), t[:, c].numpy().ravel())[0, 1]
         for c in range(3)]
    assert pearson_feature_loss(s, t).item() == pytest.approx(
        1 - np.mean(r), abs=1e-5)
    # invariant to each channel's scale and offset
    scaled = t * torch.tensor([2.0, 5.0, 0.5]).view(1, 3, 1, 1) + 3
    assert pearson_feature_loss(s, scaled).item() == pytest.approx(
        pearson_feature_loss(s, t).item(), abs=1e-5)
    assert pearson_feature_loss(t, scaled).item() == pytest.approx(
        0, abs=1e-5)


def test_dist_loss_matches_numpy_correlations():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, 4, 3, 3, generator=g)
    t = torch.randn(2, 4, 3, 3, generator=g)
    tau, beta, gamma = 2.0, 1.0, 0.5
    ps = torch.softmax(s / tau, 1).permute(0, 2, 3, 1).reshape(-1, 4).numpy()
    pt = torch.softmax(t / tau, 1).permute(0, 2, 3, 1).reshape(-1, 4).numpy()
    inter = np.mean([1 - np.corrcoef(ps[i], pt[i])[0, 1]
                     for i in range(len(ps))])
    intra = np.mean([1 - np.corrcoef(ps[:, k], pt[:, k])[0, 1]
                     for k in range(4)])
    expected = tau ** 2 * (beta * inter + gamma * intra)
    assert dist_loss(s, t, tau, beta, gamma).item() == pytest.approx(
        expected, rel=1e-4)
    assert dist_loss(t, t).item() == pytest.approx(0, abs=1e-5)



def _distiller(model_cfg, scope, ckpt, distill, size):
    return Distiller(
        student=model_cfg(8, 16),
        teacher=dict(config=dict(default_scope=scope,
                                 model=model_cfg(16, 32)),
                     checkpoint=ckpt),
        distill=distill, probe_size=size)


def _random_batch(model, size):
    inputs, samples = make_probe_batch(model.student, size)
    return torch.randn_like(inputs), samples


@pytest.mark.parametrize('term', [
    dict(type='ChannelWiseKD', adaptor=dict(type='ConvAdaptor')),
    dict(type='PearsonFeatureKD', adaptor=dict(type='ConvAdaptor')),
])
def test_feature_terms_train_in_a_detection_distiller(det_teacher_ckpt,
                                                      term):
    model = _distiller(tiny_retinanet, 'mmdet', det_teacher_ckpt, dict(
        fpn=dict(term, student='neck', teacher='neck')), (64, 64)).train()
    inputs, samples = _random_batch(model, (64, 64))
    loss = model.loss(inputs, samples)['loss_distill_fpn']
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    adaptor = model.distill_terms.fpn.adaptors[0].conv.conv.weight
    assert adaptor.grad is not None and adaptor.grad.abs().sum() > 0
    assert model.student.neck.fpn_convs[0].conv.weight.grad is not None


def test_channel_mismatch_without_adaptor_is_a_build_error(
        det_teacher_ckpt):
    with pytest.raises(ValueError, match='adaptor=None'):
        _distiller(tiny_retinanet, 'mmdet', det_teacher_ckpt, dict(
            fpn=dict(type='PearsonFeatureKD', student='neck',
                     teacher='neck')), (64, 64))


@pytest.mark.parametrize('term', [
    dict(type='ChannelWiseKD', temperature=4.0),
    dict(type='DISTKD'),
])
def test_logit_terms_train_in_a_segmentation_distiller(seg_teacher_ckpt,
                                                       term):
    model = _distiller(tiny_pspnet, 'mmseg', seg_teacher_ckpt, dict(kd=dict(
        term, student='decode_head.conv_seg',
        teacher='decode_head.conv_seg')), (32, 32)).train()
    loss = model.loss(*_random_batch(model, (32, 32)))['loss_distill_kd']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.student.decode_head.conv_seg.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('cls, bad', [
    (ChannelWiseKD, dict(temperature=0)),
    (DISTKD, dict(beta=-1.0)),
    (DISTKD, dict(temperature=math.nan)),
])
def test_bad_arguments_are_rejected(cls, bad):
    with pytest.raises(ValueError):
        cls('a', 'b', **bad)


def test_cwd_teacher_norm_standardises_each_teacher_channel():
    """MMYOLO's RTMDet recipe: affine-free BN (batch statistics) on the
    teacher map before the divergence."""
    bn = dict(type='BN', affine=False, track_running_stats=False)
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 2, 3, generator=g)
    t = torch.randn(2, 3, 2, 3, generator=g) * 5 + 2
    term = ChannelWiseKD('a', 'b', teacher_norm=bn)
    term.setup([s], [t], student_model=None)
    term.eval()  # batch statistics all the same: no running stats
    flat = t.transpose(0, 1).reshape(3, -1)
    mean = flat.mean(1).view(1, 3, 1, 1)
    var = flat.var(1, unbiased=False).view(1, 3, 1, 1)
    expected = _cwd_by_loops(s.double().numpy(),
                             ((t - mean) / torch.sqrt(var + 1e-5)).double()
                             .numpy(), 1.0)
    assert term.compute([s], [t], []).item() == pytest.approx(expected,
                                                              rel=1e-5)


def test_cwd_teacher_norm_with_parameters_is_refused():
    term = ChannelWiseKD('a', 'b', teacher_norm=dict(type='BN'))
    x = torch.zeros(2, 3, 2, 2)
    with pytest.raises(ValueError, match='parameter-free'):
        term.setup([x], [x], student_model=None)
