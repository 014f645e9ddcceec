"""Attention transfer, AT (Zagoruyko & Komodakis, ICLR 2017).

"Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer". A feature map
``A`` (C, H, W) is summarised by its spatial attention map, the channel
statistic ``Q = Σ_c |A_c|^p`` (p = 2), flattened and L2-normalised per
image; the student's map is pulled to the teacher's:

    L = β · Σ_l mean_{n, j} (Q_s/‖Q_s‖ − Q_t/‖Q_t‖)²_{n, j}

The paper writes ``β/2 · Σ_j ‖Q_s/‖Q_s‖ − Q_t/‖Q_t‖‖_p`` (p = 2) with
β = 1000; the authors' code (szagoruyko/attention-transfer, ``utils.at``
and ``utils.at_loss``) computes ``F.normalize(x.pow(2).mean(1))`` and
``(at(x) − at(y)).pow(2).mean()``, i.e. the *squared* distance averaged
over the N images and the H×W positions, times ``--beta 1e+3``; that is
what this term computes. The channel mean or sum gives the same map once
normalised, so channel counts may differ and no adaptor is needed.
"""
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..adaptors import align_spatial
from ..registry import MODELS
from ..utils.validation import check_positive
from .aligned import AlignedFeatureTerm
from .base import DistillTerm


def check_feature_maps(term: DistillTerm,
                       student_levels: Sequence[torch.Tensor],
                       teacher_levels: Sequence[torch.Tensor]) -> None:
    """Build-time check of a term comparing (N, C, H, W) maps level by
    level whose channel counts may differ (no adaptor): the same number
    of levels, every one 4-D, with the same batch size."""
    term.check_level_count(student_levels, teacher_levels)
    for level, (s, t) in enumerate(zip(student_levels, teacher_levels)):
        if s.dim() != 4 or t.dim() != 4 or s.shape[0] != t.shape[0]:
            raise ValueError(
                f'Term {term.name!r} level {level}: '
                f'{type(term).__name__} needs (N, C, H, W) maps of one '
                f'batch; student {term.student_spec} is {tuple(s.shape)}, '
                f'teacher {term.teacher_spec} is {tuple(t.shape)}.')


def spatial_attention(x: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``Σ_c |x_c|^p`` of (N, C, H, W) ``x`` as (N, 1, H, W), float32."""
    return x.float().abs().pow(p).sum(1, keepdim=True)


def attention_transfer_loss(student: torch.Tensor, teacher: torch.Tensor,
                            p: float = 2.0) -> torch.Tensor:
    """``mean_{n,j} (q_s − q_t)²`` of the L2-normalised attention maps.

    Args:
        student: (N, C_s, H_s, W_s); its attention map is resized
            (bilinear) to the teacher's H×W before normalisation.
        teacher: (N, C_t, H, W).
        p: the power of ``Σ_c |A_c|^p``.

    Returns:
        The unweighted loss (multiply by β = 1000 for the paper's).
    """
    n = teacher.shape[0]
    q_t = spatial_attention(teacher.detach(), p)
    q_s = align_spatial(spatial_attention(student, p), q_t.shape[-2:])
    q_s = F.normalize(q_s.reshape(n, -1), dim=1)
    q_t = F.normalize(q_t.reshape(n, -1), dim=1)
    return (q_s - q_t).pow(2).mean()


@MODELS.register_module()
class AttentionTransfer(AlignedFeatureTerm):
    """AT: L2-normalised spatial attention maps matched (Zagoruyko &
    Komodakis, ICLR 2017).

    Per level ``Q = Σ_c |A_c|^p`` of each map, flattened and
    L2-normalised per image, then ``mean_{n,j} (Q_s − Q_t)²`` (the
    authors' code: the squared distance averaged over images and H×W
    positions); levels (e.g. every FPN output or backbone stage) are
    summed and the sum is multiplied by ``loss_weight`` (β = 1000 in the
    paper). Because ``‖Q‖ = 1``, the loss of a level is at most
    ``4 / (H·W)``: large maps get small losses, as in the paper's formula.

    No adaptor: the attention map has one channel whatever the feature
    channels, so student and teacher may differ there. When H×W differ,
    the student's attention map (before normalisation) is resized to the
    teacher's (bilinear, :func:`mmkd.adaptors.align_spatial`). Computed
    in float32.

    Args:
        student: student module path (e.g. ``'neck'`` or ``'backbone'``).
        teacher: teacher module path.
        p: the power in ``Σ_c |A_c|^p``, a number > 0; 2 in the paper
            (its best variant, ``F²_sum``).
        loss_weight: β; 1000 in the paper (CIFAR and ImageNet).
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> # the paper places AT at the end of every residual group
        >>> distill = dict(at=dict(
        ...     type='AttentionTransfer', student='backbone',
        ...     teacher='backbone', loss_weight=1000.0))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 p: float = 2.0,
                 loss_weight: float = 1000.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, None, loss_weight, warmup_iters)
        self.p = check_positive(p, 'p')

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        check_feature_maps(self, student_levels, teacher_levels)

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        return sum(attention_transfer_loss(s, t, self.p)
                   for s, t in zip(student_levels, teacher_levels))
