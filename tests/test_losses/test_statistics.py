"""Two-pass channel statistics: torch's values, finite gradients."""
import pytest
import torch

from mmkd.losses.statistics import VARIANCE_FLOOR, mean_std, standardize


@pytest.mark.parametrize('unbiased', [True, False])
@pytest.mark.parametrize('dims', [(0, 2, 3), (1, ), (2, 3)])
def test_mean_std_equals_torch(dims, unbiased):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6) * 3 + 1
    mean, std = mean_std(x, dims, unbiased)
    ref_std, ref_mean = torch.std_mean(x, dims, unbiased=unbiased,
                                       keepdim=True)
    assert torch.allclose(mean, ref_mean, atol=1e-6)
    assert torch.allclose(std, ref_std, rtol=1e-5)
    assert torch.allclose(standardize(x, dims, unbiased, eps=0.0),
                          (x - ref_mean) / ref_std, atol=1e-5)


def test_constant_channel_has_a_finite_zero_gradient():
    x = torch.randn(2, 3, 4, 4)
    x[:, 1] = 5.0  # channel 1 is constant
    x.requires_grad_(True)
    _, std = mean_std(x, (0, 2, 3))
    assert std[0, 1].item() == pytest.approx(VARIANCE_FLOOR**0.5)
    std.sum().backward()  # the floor: no gradient through a zero variance
    assert torch.isfinite(x.grad).all() and x.grad[:, 1].abs().max() == 0
    x.grad = None
    out = standardize(x, (0, 2, 3))
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all()
    # torch's own std gives NaN there: the reason for the floor
    y = x.detach().clone().requires_grad_(True)
    ref = (y - y.mean((0, 2, 3), keepdim=True)) / y.std((0, 2, 3),
                                                      keepdim=True)
    (ref * torch.randn_like(ref)).sum().backward()
    assert not torch.isfinite(y.grad).all()
