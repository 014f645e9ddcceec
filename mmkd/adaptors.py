"""Adaptors that map student features onto the teacher's feature space.

Hint learning (Romero et al., FitNets 2015) and Chen et al. (NeurIPS 2017)
regress teacher features from student features through an *adaptation
layer*, a 1×1 convolution, which helps even when the channel counts already
match. Channel counts are inferred by probing the models at build time, and
spatial sizes are aligned by bilinear resizing of the student map.

Mixed precision: under ``torch.autocast`` an adaptor runs in the autocast
dtype like any other layer; outside it, a float16/bfloat16 feature map is
cast to the adaptor's own dtype first, so a low-precision record (e.g. from
a teacher run under autocast, or a half-precision student) never meets
float32 weights in one convolution (MMRazor's connectors fail there).
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

    Examples:
        >>> # in a term: the channels are inferred by probing the models
        >>> adaptor = dict(type='ConvAdaptor', kernel_size=3,
        ...                act_cfg=dict(type='ReLU'))
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
        """Adapt ``x`` (N, C_in, H, W) to (N, C_out, H, W).

        Outside autocast the input is cast to the weights' dtype; under
        autocast the convolution picks its dtype itself.
        """
        return self.conv(match_weight_dtype(x, self.conv.conv.weight))


def match_weight_dtype(x: torch.Tensor,
                       weight: torch.Tensor) -> torch.Tensor:
    """``x`` in ``weight``'s dtype, unless autocast is on for its device.

    Args:
        x: a floating-point input, e.g. a bfloat16 feature map.
        weight: the parameter the input meets, e.g. a float32 conv weight.
    """
    if x.dtype == weight.dtype or not x.is_floating_point() or \
            torch.is_autocast_enabled(x.device.type):
        return x
    return x.to(weight.dtype)


def align_spatial(x: torch.Tensor, size: Sequence[int],
                  align_corners: bool = False) -> torch.Tensor:
    """Bilinearly resize ``x`` (N, C, H, W) to ``size`` if it differs."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear',
                         align_corners=align_corners)
