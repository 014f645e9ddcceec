import pytest
import torch

from mmkd.losses import FeatureImitation, weighted_squared_error


def test_weighted_squared_error_by_hand():
    s = torch.tensor([[[[1., 2.], [3., 4.]]]])
    t = torch.zeros_like(s)
    w = torch.tensor([[[[1., 0.], [0.5, 0.]]]])
    # 1·1² + 0·2² + 0.5·3² + 0·4² = 5.5
    assert weighted_squared_error(s, t, w).item() == pytest.approx(5.5)
    assert weighted_squared_error(s, t).item() == pytest.approx(30.0)


def _raw_term(**kwargs):
    term = FeatureImitation('a', 'b', adaptor=None, **kwargs)
    s = torch.arange(12.).view(1, 3, 2, 2)
    term.setup([s], [torch.zeros_like(s)], student_model=None)
    return term, s


def test_unmasked_mean_is_mse():
    term, s = _raw_term()
    loss = term.compute([s], [torch.zeros_like(s)], [])
    # mean of 0², 1², ..., 11² = 506 / 12
    assert loss.item() == pytest.approx(506 / 12)


class _TopLeftMask(torch.nn.Module):
    """Weight 1 on location (0, 0) only."""

    def setup(self, student):
        pass

    def forward(self, shapes, data_samples, device):
        masks = []
        for shape in shapes:
            m = torch.zeros(shape[0], 1, *shape[-2:])
            m[:, :, 0, 0] = 1
            masks.append(m)
        return masks


@pytest.mark.parametrize('normalize,expected', [
    # location (0,0) holds 0, 4, 8 in the three channels: Σ = 80
    ('mean', 80 / (3 * 1)),  # channels × positives
    ('fgfi', 80 / (2 * 1)),  # FGFI: Σ / (2 N_p)
])
def test_masked_normalisations(normalize, expected):
    term, s = _raw_term(normalize=normalize)
    term.mask = _TopLeftMask()
    loss = term.compute([s], [torch.zeros_like(s)], [])
    assert loss.item() == pytest.approx(expected)


def test_empty_mask_gives_zero_loss_with_gradient():
    term, s = _raw_term()
    term.mask = _TopLeftMask()
    term.mask.forward = lambda shapes, samples, device: [
        torch.zeros(1, 1, 2, 2)]
    s = s.clone().requires_grad_()
    loss = term.compute([s], [torch.zeros_like(s)], [])
    assert loss.item() == 0
    loss.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))  # no NaN from 0 / 0


def test_levels_are_summed_each_normalised():
    term = FeatureImitation('a', 'b', adaptor=None)
    s = [torch.ones(1, 2, 4, 4), torch.full((1, 2, 2, 2), 2.)]
    t = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    term.setup(s, t, None)
    # level 0: mean 1, level 1: mean 4
    assert term.compute(s, t, []).item() == pytest.approx(5.0)


def test_fgfi_normalisation_counts_positives_over_all_levels():
    """N_p is summed over levels, channels are summed, not averaged."""
    term = FeatureImitation('a', 'b', adaptor=None, normalize='fgfi')
    s = [torch.ones(1, 2, 4, 4), torch.full((1, 2, 2, 2), 2.)]
    t = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    term.setup(s, t, None)
    term.mask = _TopLeftMask()
    # level 0: 2 channels · 1² = 2; level 1: 2 · 2² = 8; N_p = 1 + 1
    assert term.compute(s, t, []).item() == pytest.approx(10 / (2 * 2))
    # the 'mean' normalisation of the same masked maps: 2/2 + 8/2
    term.normalize = 'mean'
    assert term.compute(s, t, []).item() == pytest.approx(5.0)


def test_warmup_zeroes_the_weighted_loss_but_keeps_the_graph():
    term = FeatureImitation('a', 'b', loss_weight=2.0, warmup_iters=3)
    s = torch.randn(2, 4, 3, 3)
    term.setup([s], [torch.randn(2, 8, 3, 3)], None)
    t = torch.randn(2, 8, 3, 3)
    assert term(s, t, [], iteration=2).item() == 0
    loss = term(s, t, [], iteration=3)
    assert loss.item() > 0
    expected = 2.0 * term.compute([s], [t], [])
    assert loss.item() == pytest.approx(expected.item())
    term(s, t, [], iteration=0).backward()  # zero, yet every adaptor used
    assert all(p.grad is not None for p in term.parameters())


def test_unknown_normalisation_is_rejected():
    with pytest.raises(ValueError, match='normalize'):
        FeatureImitation('a', 'b', normalize='sum')
