"""The build-time probe's guard against uninitialised parameters
(:func:`mmkd.distillers.probe.uninitialised_parameters_zeroed`)."""
import torch
import torch.nn as nn

from mmkd.distillers.probe import (UNINITIALISED_MAGNITUDE, probing,
                                   uninitialised_parameters_zeroed)


def _module() -> nn.Module:
    module = nn.Module()
    module.ok = nn.Parameter(torch.randn(4, 3))
    module.nan = nn.Parameter(torch.tensor([1., float('nan'), 2.]))
    module.huge = nn.Parameter(torch.tensor([0.5, 1.3e33]))
    module.large_but_drawn = nn.Parameter(
        torch.tensor([-UNINITIALISED_MAGNITUDE, 3.]))
    return module


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().view(torch.int32).clone()


def test_uninitialised_memory_is_zero_meanwhile_and_restored_bitwise():
    module = _module()
    before = {n: _bits(p) for n, p in module.named_parameters()}
    with uninitialised_parameters_zeroed(module):
        assert torch.equal(_bits(module.ok), before['ok'])
        assert torch.equal(_bits(module.large_but_drawn),
                           before['large_but_drawn'])
        assert torch.equal(module.nan, torch.zeros(3))
        assert torch.equal(module.huge, torch.zeros(2))
        # what the probe computes is finite
        assert torch.isfinite(module.nan.sum() + module.huge.sum())
    for name, param in module.named_parameters():
        assert torch.equal(_bits(param), before[name]), name


def test_probing_restores_the_parameters_after_an_error():
    module = _module()
    before = _bits(module.huge)
    try:
        with probing(module):
            assert module.huge.abs().max() == 0
            raise RuntimeError('the probe failed')
    except RuntimeError:
        pass
    assert torch.equal(_bits(module.huge), before)
    assert module.training
