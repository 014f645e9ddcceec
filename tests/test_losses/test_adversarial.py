"""SKD's holistic adversarial term: the WGAN-GP losses on worked examples,
the discriminator's layout, and the term's gradients."""
import math

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from mmkd.discriminators import ScoreMapDiscriminator, SelfAttention
from mmkd.losses import (HolisticAdversarialKD, gradient_penalty,
                         wgan_gp_discriminator_loss)


class SquareCritic(nn.Module):
    """D(image, q) = Σ q²: ∇_q D = 2q, the image channels ignored."""

    def forward(self, x):
        return x[:, 3:].pow(2).flatten(1).sum(dim=1)


class LinearCritic(nn.Module):
    """D(image, q) = Σ w·q: ∇_q D = w everywhere."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, x):
        return (x[:, 3:] * self.weight).flatten(1).sum(dim=1)


def _maps(*values):
    """(1, K, 1, 1) map with the given class values."""
    return torch.tensor(values).view(1, -1, 1, 1)


def test_gradient_penalty_of_a_linear_critic():
    """‖w‖ = ‖(3, 4)‖ = 5 at every Q̂: penalty (5 − 1)² = 16."""
    critic = LinearCritic(torch.tensor([3., 4.]).view(1, 1, 1, 2))
    q_hat = torch.rand(2, 1, 1, 2)
    images = torch.rand(2, 3, 4, 4)
    assert gradient_penalty(critic, images, q_hat).item() == \
        pytest.approx(16.0)


def test_wgan_gp_loss_worked_example():
    """Real Q_t = (2, 0), fake Q_s = (0, 1), α = 1/4:
    Q̂ = (1/2, 3/4), ∇ = 2Q̂ = (1, 3/2), ‖∇‖ = √3.25, GP = (√3.25 − 1)²;
    D(real) = 4, D(fake) = 1: loss = −4 + 1 + 10·GP."""
    gp = (math.sqrt(3.25) - 1) ** 2
    loss = wgan_gp_discriminator_loss(
        SquareCritic(), torch.zeros(1, 3, 2, 2), _maps(2., 0.),
        _maps(0., 1.), torch.tensor([0.25]), gp_weight=10.0)
    assert loss.item() == pytest.approx(-3 + 10 * gp, rel=1e-6)
    # α weights the real map: α = 3/4 gives Q̂ = (3/2, 1/4) instead
    swapped = wgan_gp_discriminator_loss(
        SquareCritic(), torch.zeros(1, 3, 2, 2), _maps(2., 0.),
        _maps(0., 1.), torch.tensor([0.75]), gp_weight=10.0)
    gp_swapped = (math.sqrt(9 + 0.25) - 1) ** 2
    assert swapped.item() == pytest.approx(-3 + 10 * gp_swapped, rel=1e-6)


def test_gradient_penalty_is_averaged_over_images():
    """Per image ‖∇‖: 2‖(1, 0)‖ = 2 and 2‖(0, 0.5)‖ = 1: mean of (1, 0)."""
    q_hat = torch.tensor([[1., 0.], [0., .5]]).view(2, 2, 1, 1)
    assert gradient_penalty(SquareCritic(), torch.zeros(2, 3, 1, 1),
                            q_hat).item() == pytest.approx(0.5)


def test_discriminator_layout_and_scores():
    d = ScoreMapDiscriminator(in_channels=7, widths=(4, 8, 8, 16))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)
             and parametrize.is_parametrized(m, 'weight')]
    # four stride-2 4×4 convs and the final 4×4 conv, spectral-normed
    assert [(c.kernel_size, c.stride) for c in convs] == \
        [((4, 4), (2, 2))] * 4 + [((4, 4), (1, 1))]
    assert [c.out_channels for c in convs] == [4, 8, 8, 16, 1]
    slopes = {m.negative_slope for m in d.modules()
              if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}
    layers = list(d.features)
    attention = [i for i, m in enumerate(layers)
                 if isinstance(m, SelfAttention)]
    assert len(attention) == 2
    # after the third and the fourth conv (their LeakyReLUs)
    assert isinstance(layers[attention[0] - 2], nn.Conv2d)
    assert layers[attention[0] - 2].out_channels == 8
    assert layers[attention[1] - 2].out_channels == 16
    scores = d(torch.randn(3, 7, 64, 64))
    assert scores.shape == (3,)
    assert d(torch.randn(2, 7, 16, 16)).shape == (2,)  # padded to 4×4
    # smaller than 2^4 a side: zero-padded to 16×16 first
    x = torch.randn(2, 7, 8, 4)
    d.eval()  # no power iteration between the two calls
    assert torch.equal(d(x), d(torch.nn.functional.pad(x, (0, 12, 0, 8))))


def test_self_attention_starts_as_the_identity():
    block = SelfAttention(16)
    x = torch.randn(2, 16, 3, 5)
    assert torch.equal(block(x), x)
    block.gamma.data.fill_(1.0)
    assert not torch.allclose(block(x), x)


def test_bad_discriminator_arguments():
    with pytest.raises(ValueError, match='widths'):
        ScoreMapDiscriminator(5, widths=(8,))
    d = ScoreMapDiscriminator(5, widths=(4, 4))
    with pytest.raises(ValueError, match=r'\(N, 5, H, W\)'):
        d(torch.zeros(1, 4, 32, 32))


def _term(**kwargs):
    term = HolisticAdversarialKD(
        'decode_head.conv_seg', 'decode_head.conv_seg',
        discriminator=dict(type='ScoreMapDiscriminator', widths=(4, 8)),
        **kwargs)
    term.name = 'holistic'
    return term


def test_term_gradients_go_to_the_student_or_to_d():
    torch.manual_seed(0)
    term = _term(loss_weight=0.1)
    images = torch.rand(2, 3, 32, 32)
    s = torch.randn(2, 4, 8, 8, requires_grad=True)
    t = torch.randn(2, 4, 16, 16)  # the student map is resized
    term.set_inputs(images)
    term.setup([s.detach()], [t], None)
    assert term.discriminator.in_channels == 3 + 4
    loss = term(s, t, [], iteration=0)
    loss.backward()
    assert s.grad.abs().sum() > 0
    assert all(p.grad is None for p in term.discriminator.parameters())
    # −λ_d E D(Q_s), by calling D on the inputs it should see
    q_s = torch.softmax(nn.functional.interpolate(
        s.detach(), (16, 16), mode='bilinear', align_corners=False), dim=1)
    x = torch.cat([nn.functional.interpolate(images, (16, 16),
                                             mode='bilinear'), q_s], dim=1)
    term.discriminator.eval()  # no further power iteration
    with torch.no_grad():
        expected = -0.1 * term.discriminator(x).mean()
        assert (0.1 * term.student_loss()).item() == \
            pytest.approx(expected.item(), rel=1e-5)
    term.discriminator.train()
    s.grad = None
    term.discriminator_loss().backward()
    assert s.grad is None  # the kept maps are detached
    assert all(p.grad is not None for p in term.discriminator.parameters()
               if p.requires_grad)


def test_term_deferred_returns_a_placeholder_and_keeps_the_maps():
    term = _term()
    s, t = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    term.set_inputs(torch.rand(1, 3, 16, 16))
    term.setup([s], [t], None)
    with term.deferred():
        assert term(s, t, [], iteration=0).item() == 0.0
    assert term.weight_at(0) == pytest.approx(0.1)
    assert torch.isfinite(term.student_loss())
    term.forget()
    with pytest.raises(RuntimeError, match='no maps kept'):
        term.discriminator_loss()


def test_term_rejects_bad_configs():
    with pytest.raises(ValueError, match='discriminator_steps'):
        _term(discriminator_steps=0)
    narrow = HolisticAdversarialKD(
        'a', 'b', discriminator=dict(type='ScoreMapDiscriminator',
                                     widths=(8,)))
    narrow.name = 'holistic'
    narrow.set_inputs(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"'holistic'.*widths"):
        narrow.setup([torch.zeros(1, 4, 8, 8)], [torch.zeros(1, 4, 8, 8)],
                     None)
    term = _term()
    term.set_inputs(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"'holistic'.*same K classes"):
        term.setup([torch.zeros(1, 4, 8, 8)], [torch.zeros(1, 19, 8, 8)],
                   None)
