"""Discriminators of adversarial distillation terms.

:class:`ScoreMapDiscriminator` is the holistic discriminator of SKD (Liu et
al., Structured Knowledge Distillation for Semantic Segmentation, CVPR
2019), after SAGAN (Zhang et al., ICML 2019): it scores a segmentation map
conditioned on its image, higher for maps that look like the teacher's.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from .registry import MODELS


class SelfAttention(nn.Module):
    """SAGAN self-attention: every position attends to every other one.

    ``out = γ · V softmax(QᵀK) + x``, with 1×1 convs Q, K (C/8 channels,
    at least 1) and V (C channels); γ starts at 0, so the block starts as
    the identity.

    Args:
        channels: C, the channels of the input map.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        key = self.key(x).flatten(2)  # (N, C', HW)
        attention = torch.softmax(query @ key, dim=-1)  # (N, HW, HW)
        out = self.value(x).flatten(2) @ attention.transpose(1, 2)
        return self.gamma * out.view(n, c, h, w) + x


@MODELS.register_module()
class ScoreMapDiscriminator(nn.Module):
    """SKD's holistic discriminator on (image, softmax score map) pairs.

    Spectral-normalised 4×4 stride-2 convs (widths 64/128/256/512 in SKD),
    each followed by LeakyReLU(0.1), self-attention after the last two, and
    a final spectral-normalised 4×4 conv to one channel whose outputs are
    averaged into one score an image (a Wasserstein critic: no sigmoid).
    Small inputs still give a score: inputs are zero-padded (bottom,
    right) to at least ``2 ** len(widths)`` pixels a side, and the map
    before the final conv to at least 4×4.

    Args:
        in_channels: channels of the input, image channels plus classes
            (the :class:`~mmkd.losses.HolisticAdversarialKD` term infers
            it from the probe).
        widths: output channels of the stride-2 convs; SKD
            (64, 128, 256, 512). At least two (the self-attention blocks
            follow the last two).
        negative_slope: of the LeakyReLUs; SKD 0.1.

    Examples:
        >>> distill = dict(holistic=dict(
        ...     type='HolisticAdversarialKD',
        ...     student='decode_head.conv_seg',
        ...     teacher='decode_head.conv_seg',
        ...     discriminator=dict(type='ScoreMapDiscriminator',
        ...                        widths=(64, 128, 256, 512))))
    """

    def __init__(self,
                 in_channels: int,
                 widths: Sequence[int] = (64, 128, 256, 512),
                 negative_slope: float = 0.1) -> None:
        super().__init__()
        widths = tuple(widths)
        if len(widths) < 2 or not all(
                isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f'widths must be two or more positive channel '
                             f'counts, e.g. (64, 128, 256, 512); got '
                             f'{widths!r}.')
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'in_channels must be a positive integer, got '
                             f'{in_channels!r}.')
        self.in_channels = in_channels
        self.min_size = 2 ** len(widths)
        layers = []
        channels = in_channels
        for index, width in enumerate(widths):
            layers.append(spectral_norm(
                nn.Conv2d(channels, width, 4, stride=2, padding=1)))
            layers.append(nn.LeakyReLU(negative_slope))
            if index >= len(widths) - 2:
                layers.append(SelfAttention(width))
            channels = width
        self.features = nn.Sequential(*layers)
        self.last = spectral_norm(nn.Conv2d(channels, 1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N,) scores."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects (N, {self.in_channels}, H, '
                f'W) inputs, got {tuple(x.shape)}.')
        x = self.features(_pad_to(x, self.min_size))
        return self.last(_pad_to(x, 4)).flatten(1).mean(dim=1)


def _pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad the bottom and right of ``x`` to at least ``size`` a side.
    """
    pad_h, pad_w = max(0, size - x.shape[-2]), max(0, size - x.shape[-1])
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x
