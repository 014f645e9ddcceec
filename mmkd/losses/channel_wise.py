"""Channel-wise distillation, CWD (Shu et al., ICCV 2021).

Each channel of a feature or score map is turned into a distribution over
its H×W locations, ``φ(y_c) = softmax(y_c / τ)``, and the student's is
pulled towards the teacher's:

    L = τ² / (N·C) · Σ_{n,c} KL(φ(T_{n,c}) ‖ φ(S_{n,c}))

so the student learns where each channel of the teacher is most active.
Paper defaults: segmentation logits τ = 1..4 with weight 3..5; detection
FPN features τ = 1 with weight 10 (RTMDet's recipe: a 1×1 connector and
affine-free BN on both sides, weight 1).
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.structures import BaseDataElement

from ..registry import MODELS
from ..utils.validation import check_positive
from .aligned import AlignedFeatureTerm


def channel_wise_divergence(student: torch.Tensor, teacher: torch.Tensor,
                            temperature: float = 1.0) -> torch.Tensor:
    """``τ²/(N·C) Σ_{n,c} KL(softmax_HW(t/τ) ‖ softmax_HW(s/τ))``, float32.

    Args:
        student: (N, C, H, W).
        teacher: (N, C, H, W), the same shape.
        temperature: τ.
    """
    n, c = teacher.shape[:2]
    s = student.float().reshape(n * c, -1) / temperature
    t = teacher.float().reshape(n * c, -1) / temperature
    log_p_t = F.log_softmax(t, dim=1)
    kl = (log_p_t.exp() * (log_p_t - F.log_softmax(s, dim=1))).sum()
    return kl * temperature ** 2 / (n * c)


@MODELS.register_module()
class ChannelWiseKD(AlignedFeatureTerm):
    """CWD: per-channel spatial distributions matched by KL (Shu et al.,
    ICCV 2021). Levels (e.g. every FPN output) are summed.

    Args:
        student: student module path (e.g. ``'neck'`` or
            ``'decode_head.conv_seg'``).
        teacher: teacher module path.
        temperature: τ; 1 for FPN features, 1..4 for segmentation logits.
        adaptor: e.g. ``dict(type='ConvAdaptor')`` when channels differ;
            ``None`` (default) compares the maps directly.
        teacher_norm: a parameter-free norm applied to each teacher map,
            e.g. ``dict(type='BN', affine=False,
            track_running_stats=False)`` (batch statistics, MMYOLO's
            RTMDet recipe, with the same norm in the student's adaptor);
            ``None`` (default) for none.
        loss_weight: multiplier; the paper uses 3 (segmentation logits,
            τ = 4) and 10 (detection FPN, τ = 1).
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(cwd=dict(
        ...     type='ChannelWiseKD', student='decode_head.conv_seg',
        ...     teacher='decode_head.conv_seg', temperature=4,
        ...     loss_weight=3))
        >>> # RTMDet (MMYOLO): 1x1 conv + affine-free BN on both sides
        >>> bn = dict(type='BN', affine=False, track_running_stats=False)
        >>> distill = dict(fpn0=dict(
        ...     type='ChannelWiseKD', student='neck.out_convs.0.conv',
        ...     teacher='neck.out_convs.0.conv', teacher_norm=bn,
        ...     adaptor=dict(type='ConvAdaptor', norm_cfg=bn)))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 temperature: float = 1.0,
                 adaptor: Optional[dict] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0,
                 teacher_norm: Optional[dict] = None) -> None:
        super().__init__(student, teacher, adaptor, loss_weight,
                         warmup_iters)
        self.temperature = check_positive(temperature, 'temperature')
        self.teacher_norm_cfg = teacher_norm
        self.teacher_norms = nn.ModuleList()

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        super().setup(student_levels, teacher_levels, student_model)
        if self.teacher_norm_cfg is None:
            return
        for t in teacher_levels:
            norm = build_norm_layer(dict(self.teacher_norm_cfg),
                                    t.shape[1])[1]
            if any(True for _ in norm.parameters()):
                raise ValueError(
                    f'Term {self.name!r}: teacher_norm '
                    f'{self.teacher_norm_cfg} has parameters, which would '
                    'train the teacher\'s target; make it parameter-free, '
                    'e.g. dict(type="BN", affine=False, '
                    'track_running_stats=False).')
            self.teacher_norms.append(norm)

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        student_levels = self.align(student_levels, teacher_levels)
        if self.teacher_norms:
            teacher_levels = [norm(t.float()) for norm, t in
                              zip(self.teacher_norms, teacher_levels)]
        return sum(channel_wise_divergence(s, t, self.temperature)
                   for s, t in zip(student_levels, teacher_levels))
