"""FGD: masks, attentions, focal, attention and global parts against
values computed by hand on tiny tensors."""
import math

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmkd.losses import FocalGlobalKD, GlobalContextRelation
from mmkd.losses.fgd import fgd_attention, fgd_focal_losses, focal_box_masks

LN3 = math.log(3)


def _sample(boxes, input_shape):
    sample = DetDataSample(metainfo=dict(batch_input_shape=input_shape))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    return sample


def test_masks_scale_weights_and_background():
    # an 8x8 input on a 4x4 map (stride 2); box A covers 2x2 cells, box B
    # (inside A's corner and beyond) 1x1 cell, box C 3x1 cells
    boxes = torch.tensor([[0., 0., 4., 4.],   # cells rows 0-1, cols 0-1
                          [2., 2., 3., 3.],   # cell (1, 1)
                          [1., 6., 6., 8.]])  # row 3, cols 0-2
    fg, bg = focal_box_masks([boxes, torch.zeros(0, 4)], (4, 4), (8, 8),
                             torch.device('cpu'))
    expected = torch.zeros(4, 4)
    expected[0:2, 0:2] = 1 / 4
    expected[1, 1] = 1.0  # max over the overlapping boxes
    expected[3, 0:3] = 1 / 3
    assert torch.allclose(fg[0, 0], expected)
    # 16 - 4 - 3 = 9 background cells, each 1/9
    assert torch.allclose(bg[0, 0], (expected == 0).float() / 9)
    # an image without boxes: no foreground, 16 background cells of 1/16
    assert fg[1].sum() == 0
    assert torch.allclose(bg[1], torch.full((1, 4, 4), 1 / 16))


def test_mask_with_no_background_is_zero():
    fg, bg = focal_box_masks([torch.tensor([[0., 0., 8., 8.]])], (2, 2),
                             (8, 8), torch.device('cpu'))
    assert torch.allclose(fg, torch.full((1, 1, 2, 2), 0.25))
    assert bg.sum() == 0


def test_attention_by_hand():
    # |t| averaged over the 2 channels: locations (0, ln3/2); /T=0.5 gives
    # (0, ln3): softmax (1/4, 3/4), times H·W = 2 -> (0.5, 1.5).
    # channels: both average ln3/4 -> C·softmax = (1, 1)
    t = torch.tensor([[[[0., LN3 / 2]], [[0., -LN3 / 2]]]])
    spatial, channel = fgd_attention(t, 0.5)
    assert torch.allclose(spatial, torch.tensor([[[[0.5, 1.5]]]]))
    assert torch.allclose(channel, torch.ones(1, 2, 1, 1))


def _focal_case():
    """Teacher as above, student all ones; the box covers the right cell
    of a 1x2 map (input 2x4)."""
    t = torch.tensor([[[[0., LN3 / 2]], [[0., -LN3 / 2]]]])
    s = torch.ones_like(t)
    return s, t, _sample([[2., 0., 4., 2.]], (2, 4))


def test_focal_losses_by_hand():
    s, t, sample = _focal_case()
    fg, bg = focal_box_masks([sample.gt_instances.bboxes], (1, 2), (2, 4),
                             torch.device('cpu'))
    fg_loss, bg_loss, att_loss = fgd_focal_losses(s, t, fg, bg, 0.5)
    # right cell: A^S 1.5, A^C 1, M = 1/(1·1);
    # (1 − ln3/2)² + (1 + ln3/2)² = 2 + ln²3/2
    assert fg_loss.item() == pytest.approx(1.5 * (2 + LN3 ** 2 / 2))
    # left cell: A^S 0.5, 1/N_bg = 1, errors 1² + 1²
    assert bg_loss.item() == pytest.approx(0.5 * 2)
    # student attentions: spatial (1, 1), channel (1, 1):
    # |0.5 − 1| + |1.5 − 1| = 1
    assert att_loss.item() == pytest.approx(1.0)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_focal_losses_stay_float32_under_autocast(dtype):
    # squared errors of 300 summed over channels: far beyond float16's
    # 65504 and rounded by bfloat16, were the product autocast
    torch.manual_seed(0)
    s, t = torch.randn(2, 8, 4, 4) * 300, torch.randn(2, 8, 4, 4) * 300
    fg, bg = focal_box_masks([torch.tensor([[0., 0., 8., 8.]])] * 2,
                             (4, 4), (16, 16), torch.device('cpu'))
    expected = fgd_focal_losses(s, t, fg, bg, 0.5)
    with torch.autocast('cpu', dtype=dtype):
        got = fgd_focal_losses(s, t, fg, bg, 0.5)
    for a, b in zip(got, expected):
        assert a.dtype == torch.float32 and torch.isfinite(a)
        assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_focal_losses_are_divided_by_the_batch_size():
    s, t, sample = _focal_case()
    fg, bg = focal_box_masks([sample.gt_instances.bboxes] * 2, (1, 2),
                             (2, 4), torch.device('cpu'))
    one = fgd_focal_losses(s, t, fg[:1], bg[:1], 0.5)
    two = fgd_focal_losses(torch.cat([s, s]), torch.cat([t, t]), fg, bg,
                           0.5)
    for a, b in zip(one, two):
        assert a.item() == pytest.approx(b.item())


def _relation_reference(block, x):
    """GcBlock in NumPy, from the block's parameters."""
    p = {k: v.detach().double().numpy() for k, v in block.state_dict()
         .items()}
    x = x.detach().double().numpy()
    n, c, h, w = x.shape
    out = np.empty_like(x)
    for i in range(n):
        f = x[i].reshape(c, h * w)
        logits = p['context_mask.weight'].reshape(c) @ f + \
            p['context_mask.bias'][0]
        a = np.exp(logits - logits.max())
        a /= a.sum()
        context = f @ a  # (C,)
        hidden = p['transform.0.weight'][:, :, 0, 0] @ context + \
            p['transform.0.bias']
        hidden = (hidden - hidden.mean()) / np.sqrt(hidden.var() + 1e-5)
        hidden = hidden * p['transform.1.weight'].reshape(-1) + \
            p['transform.1.bias'].reshape(-1)
        hidden = np.maximum(hidden, 0)
        add = p['transform.3.weight'][:, :, 0, 0] @ hidden + \
            p['transform.3.bias']
        out[i] = x[i] + add[:, None, None]
    return out


def test_relation_starts_as_identity_and_matches_reference():
    torch.manual_seed(0)
    block = GlobalContextRelation(4)
    x = torch.randn(2, 4, 3, 5)
    assert torch.equal(block(x), x)  # the last conv starts at zero
    with torch.no_grad():
        for param in block.parameters():
            param.normal_()
    assert np.allclose(block(x).detach().numpy(),
                       _relation_reference(block, x), atol=1e-5)


def _term(**kwargs):
    s, t, sample = _focal_case()
    term = FocalGlobalKD('neck', 'neck', **kwargs)
    term.setup([s], [t], student_model=None)
    return term, s, t, sample


def test_term_combines_the_parts_with_their_weights():
    term, s, t, sample = _term(alpha_fg=2.0, beta_bg=3.0,
                               gamma_attention=5.0, lambda_global=7.0)
    loss = term.compute([s], [t], [sample])
    # relation blocks start as the identity: global = Σ(s − t)² / N
    global_part = ((s - t) ** 2).sum().item()
    expected = (2.0 * 1.5 * (2 + LN3 ** 2 / 2) + 3.0 * 0.5 * 2 +
                5.0 * 1.0 + 7.0 * global_part)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_term_global_part_uses_each_sides_relation_block():
    term, s, t, sample = _term(alpha_fg=0, beta_bg=0, gamma_attention=0,
                               lambda_global=1.0)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in term.parameters():
            param.normal_()
    expected = ((_relation_reference(term.student_relations[0], s) -
                 _relation_reference(term.teacher_relations[0], t)) ** 2
                ).sum()
    loss = term.compute([s], [t], [sample])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()  # both blocks train
    for block in (term.student_relations[0], term.teacher_relations[0]):
        assert block.transform[3].bias.grad.abs().sum() > 0


def test_term_sums_levels_and_resizes_the_student():
    term = FocalGlobalKD('neck', 'neck')
    s = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)]
    t = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 2, 2)]
    term.setup(s, t, student_model=None)
    assert len(term.student_relations) == len(term.teacher_relations) == 2
    samples = [_sample([[0., 0., 16., 16.]], (32, 32))] * 2
    both = term.compute(s, t, samples)
    first = FocalGlobalKD('neck', 'neck')
    first.setup(s[:1], t[:1], student_model=None)
    small = torch.nn.functional.interpolate(s[1], size=(2, 2),
                                            mode='bilinear')
    second = FocalGlobalKD('neck', 'neck')
    second.setup([small], t[1:], student_model=None)
    expected = first.compute(s[:1], t[:1], samples) + \
        second.compute([small], t[1:], samples)
    assert both.item() == pytest.approx(expected.item(), rel=1e-6)


def test_channel_mismatch_needs_an_adaptor():
    term = FocalGlobalKD('neck', 'neck')
    with pytest.raises(ValueError, match='adaptor'):
        term.setup([torch.zeros(1, 2, 4, 4)], [torch.zeros(1, 4, 4, 4)],
                   student_model=None)
    term = FocalGlobalKD('neck', 'neck', adaptor=dict(type='ConvAdaptor'))
    term.setup([torch.zeros(1, 2, 4, 4)], [torch.zeros(1, 4, 4, 4)],
               student_model=None)
    assert term.adaptors[0].conv.conv.in_channels == 2


def test_segmentor_student_is_refused(seg_scope):
    from conftest import tiny_pspnet
    from mmengine.registry import MODELS
    student = MODELS.build(tiny_pspnet())
    term = FocalGlobalKD('decode_head', 'decode_head')
    with pytest.raises(ValueError, match='segmentor'):
        term.setup([torch.zeros(1, 4, 4, 4)], [torch.zeros(1, 4, 4, 4)],
                   student_model=student)


@pytest.mark.parametrize('bad', [dict(temperature=0),
                                 dict(alpha_fg=-1.0),
                                 dict(lambda_global=float('nan'))])
def test_bad_weights_are_refused(bad):
    with pytest.raises(ValueError):
        FocalGlobalKD('neck', 'neck', **bad)
