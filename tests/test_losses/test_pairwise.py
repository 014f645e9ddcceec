"""SKD's pair-wise term against affinities worked out by hand."""
import math

import pytest
import torch

from conftest import save_teacher, tiny_pspnet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import (PairwiseAffinityKD, cosine_affinity,
                         pairwise_affinity_loss)


def _nodes(*vectors):
    """(1, C, 1, len(vectors)) map whose pixels are the given vectors."""
    return torch.tensor(vectors, dtype=torch.float32).t()[None, :, None]


def test_cosine_affinity_by_hand():
    a = cosine_affinity(_nodes((1., 0.), (1., 1.), (0., -2.)))
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[1, r, 0], [r, 1, -r], [0, -r, 1]])
    assert torch.allclose(a[0], expected, atol=1e-6)


def test_pairwise_loss_by_hand():
    """Teacher nodes (1,0), (0,1): a^t = I. Student nodes (1,0), (1,1):
    off-diagonal 1/√2. Σ (a^s − a^t)² = 2 · 1/2 = 1, over (W'H')² = 4."""
    teacher = _nodes((1., 0.), (0., 1.))
    student = _nodes((1., 0.), (1., 1.))
    assert pairwise_affinity_loss(student, teacher).item() == \
        pytest.approx(0.25)
    # averaged over the batch: a second, identical pair adds 0
    both_s = torch.cat([student, teacher])
    both_t = torch.cat([teacher, teacher])
    assert pairwise_affinity_loss(both_s, both_t).item() == \
        pytest.approx(0.125)
    # affinities ignore the scale of each node
    assert pairwise_affinity_loss(student * 7, teacher).item() == \
        pytest.approx(0.25)


def test_term_pools_nodes_and_ignores_channel_counts():
    """Teacher 2×4, region 2: two nodes, max over each 2×2 block, (3, 0)
    and (0, 4), so a^t = I. Student (3 channels, 4×8) adaptively max-pooled
    to the same 1×2 grid: both nodes (1, 1, 0), a^s = all ones. Loss
    (0 + 1 + 1 + 0) / 4 = 0.5, times the weight."""
    teacher = torch.zeros(1, 2, 2, 4)
    teacher[0, 0, :, :2] = torch.tensor([[3., 1.], [0., 2.]])
    teacher[0, 1, :, 2:] = torch.tensor([[1., 4.], [2., 0.]])
    student = torch.zeros(1, 3, 4, 8)
    student[0, :2] = 1.0
    term = PairwiseAffinityKD('a', 'b', region=2, loss_weight=0.5)
    term.setup([student], [teacher], None)
    s_nodes, t_nodes = term.pool(student, teacher)
    assert torch.equal(t_nodes[0, :, 0], torch.tensor([[3., 0.], [0., 4.]]))
    assert s_nodes.shape == (1, 3, 1, 2)
    assert term(student, teacher, [], iteration=0).item() == \
        pytest.approx(0.25)


def test_region_keeps_partial_border_windows_and_grid_overrides():
    term = PairwiseAffinityKD('a', 'b', region=2)
    assert term.node_grid(torch.zeros(1, 1, 5, 3)) == (3, 2)
    fixed = PairwiseAffinityKD('a', 'b', grid=(2, 2))
    s, t = fixed.pool(torch.randn(1, 2, 6, 6), torch.randn(1, 4, 9, 5))
    assert s.shape[-2:] == t.shape[-2:] == (2, 2)


def test_gradient_reaches_the_student_only():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 5, 4, 4)
    term = PairwiseAffinityKD('a', 'b', region=2)
    term(s, t, [], iteration=0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert not t.requires_grad


@pytest.mark.parametrize('kwargs, match', [
    (dict(region=0), 'region'), (dict(region=1.5), 'region'),
    (dict(grid=(2, 0)), 'grid')])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        PairwiseAffinityKD('a', 'b', **kwargs)


def test_student_smaller_than_the_grid_is_a_build_error():
    term = PairwiseAffinityKD('a', 'b', grid=(8, 8))
    term.name = 'pair'
    with pytest.raises(ValueError, match=r"'pair'.*smaller than the"):
        term.setup([torch.zeros(1, 2, 4, 4)], [torch.zeros(1, 2, 16, 16)],
                   None)


def test_in_a_distiller_between_different_widths(tmp_path, seg_scope):
    ckpt = save_teacher(tiny_pspnet(16, 32), str(tmp_path / 't.pth'),
                        'mmseg')
    model = Distiller(
        student=tiny_pspnet(), teacher=dict(config=tiny_pspnet(16, 32),
                                            checkpoint=ckpt),
        distill=dict(pair=dict(
            type='PairwiseAffinityKD', student='decode_head.bottleneck',
            teacher='decode_head.bottleneck', loss_weight=1.0)),
        probe_size=(32, 32))
    inputs, samples = make_probe_batch(model.student, (32, 32))
    inputs = torch.rand_like(inputs)
    losses = model.loss(inputs, samples)
    loss = losses['loss_distill_pair']
    assert loss.item() > 0
    loss.backward()
    grad = model.student.decode_head.bottleneck.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
