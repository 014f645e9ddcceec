"""Adaptors that map student features onto the teacher's feature space.

Hint learning (Romero et al., FitNets 2015) and Chen et al. (NeurIPS 2017)
regress teacher features from student features through an *adaptation
layer*, a 1×1 convolution, which helps even when the channel counts already
match. Channel counts are inferred by probing the models at build time, and
spatial sizes are aligned by bilinear resizing of the student map.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from .registry import MODELS


@MODELS.register_module()
class ConvAdaptor(nn.Module):
    """A 1×1 (or k×k) convolution with optional norm and activation.

    Args:
        in_channels: student channels (inferred when built by a term).
        out_channels: teacher channels (inferred when built by a term).
        kernel_size: 1 by default; FGFI's reference code uses 3 with ReLU.
        norm_cfg: e.g. ``dict(type='BN')``; ``None`` (default) for none.
        act_cfg: e.g. ``dict(type='ReLU')``; ``None`` (default) for none.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.conv = ConvModule(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def align_spatial(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinearly resize ``x`` (N, C, H, W) to ``size`` if it differs."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear',
                         align_corners=False)
