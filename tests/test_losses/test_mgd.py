"""MGD: the random mask's ratio, and the loss against values computed by
hand with a generation block set to known weights."""
import pytest
import torch

from mmkd.losses import MaskedGenerativeKD
from mmkd.losses.mgd import (generation_block, masked_generation_loss,
                             random_spatial_mask)


def test_mask_ratio_is_lambda_and_seeded():
    torch.manual_seed(0)
    keep = random_spatial_mask((8, 5, 64, 64), 0.65, torch.device('cpu'))
    assert keep.shape == (8, 1, 64, 64)
    assert set(keep.unique().tolist()) == {0.0, 1.0}
    # 32768 Bernoulli draws: the masked share is 0.65 within 0.01
    assert (1 - keep.mean().item()) == pytest.approx(0.65, abs=0.01)
    torch.manual_seed(0)
    again = random_spatial_mask((8, 5, 64, 64), 0.65, torch.device('cpu'))
    assert torch.equal(keep, again)
    assert random_spatial_mask((1, 1, 4, 4), 0.0,
                               torch.device('cpu')).sum() == 16


def _identity_block(channels):
    """G(x) = ReLU(x): both 3×3 convs pass the centre tap through."""
    block = generation_block(channels)
    with torch.no_grad():
        for conv in (block[0], block[2]):
            conv.weight.zero_()
            conv.bias.zero_()
            for c in range(channels):
                conv.weight[c, c, 1, 1] = 1
    return block


def test_loss_by_hand():
    s = torch.tensor([[[[1., -2.], [3., 4.]]]])
    t = torch.tensor([[[[1., 1.], [1., 1.]]]])
    keep = torch.tensor([[[[1., 1.], [0., 1.]]]])
    # G(keep·s) = ReLU(1, -2, 0, 4) = (1, 0, 0, 4);
    # (1−1)² + (0−1)² + (0−1)² + (4−1)² = 11, N = 1
    loss = masked_generation_loss(s, t, _identity_block(1), keep)
    assert loss.item() == pytest.approx(11.0)
    # two images: the sum is divided by N = 2
    loss = masked_generation_loss(torch.cat([s, s]), torch.cat([t, t]),
                                  _identity_block(1), torch.cat([keep,
                                                                 keep]))
    assert loss.item() == pytest.approx(11.0)


def test_term_draws_the_mask_from_the_global_rng():
    term = MaskedGenerativeKD('neck', 'neck', mask_ratio=0.5)
    s = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    t = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    term.setup(s, t, student_model=None)
    assert len(term.generations) == 2
    for i in range(2):
        term.generations[i] = _identity_block(3)
    torch.manual_seed(3)
    loss = term.compute(s, t, [])
    torch.manual_seed(3)
    expected = 0.0
    for si, ti in zip(s, t):
        keep = random_spatial_mask(ti.shape, 0.5, torch.device('cpu'))
        expected += ((torch.relu(si * keep) - ti) ** 2).sum() / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert term.loss_weight == 2e-5  # α of the paper's detection configs


def test_adaptor_and_gradient_reach_the_student():
    term = MaskedGenerativeKD('neck', 'neck',
                              adaptor=dict(type='ConvAdaptor'))
    s = torch.randn(1, 2, 4, 4, requires_grad=True)
    t = torch.randn(1, 5, 4, 4)
    term.setup([s], [t], student_model=None)
    assert term.generations[0][0].in_channels == 5
    torch.manual_seed(0)
    term.compute([s], [t], []).backward()
    assert s.grad.abs().sum() > 0


@pytest.mark.parametrize('ratio', [1.0, -0.1, 2])
def test_bad_mask_ratio_is_refused(ratio):
    with pytest.raises(ValueError, match='mask_ratio'):
        MaskedGenerativeKD('neck', 'neck', mask_ratio=ratio)
