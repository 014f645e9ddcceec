"""PKD: feature distillation with Pearson correlation (Cao et al.,
NeurIPS 2022).

Each channel of both maps is normalised over (N, H, W) to zero mean and
unit variance, and the mean squared error of the normalised maps is
halved:

    L = MSE(norm(S), norm(T)) / 2  = 1 − r   (r: Pearson correlation)

which ignores the magnitude and offset of each channel, so a teacher of
another architecture (FCOS teacher, RetinaNet student) can be imitated.
The student map is resized to the teacher's H×W. Paper weights: 6 for
two-stage detectors, 10 for RetinaNet.
"""
from typing import List, Sequence

import torch
from mmengine.structures import BaseDataElement

from ..registry import MODELS
from .aligned import AlignedFeatureTerm
from .statistics import standardize


def channel_standardize(x: torch.Tensor, eps: float = 1e-6
                        ) -> torch.Tensor:
    """Each channel of (N, C, H, W) ``x`` over (N, H, W): zero mean, unit
    (population) standard deviation, in float32."""
    return standardize(x.float(), (0, 2, 3), unbiased=False, eps=eps)


def pearson_feature_loss(student: torch.Tensor,
                         teacher: torch.Tensor) -> torch.Tensor:
    """``mean((norm(s) − norm(t))²) / 2`` for (N, C, H, W) maps of one
    shape: 1 − the mean per-channel Pearson correlation (up to eps)."""
    diff = channel_standardize(student) - channel_standardize(teacher)
    return diff.pow(2).mean() / 2


@MODELS.register_module()
class PearsonFeatureKD(AlignedFeatureTerm):
    """PKD: per-channel standardised MSE (Cao et al., NeurIPS 2022).

    Levels (e.g. every FPN output) are summed.

    Args:
        student: student module path (e.g. ``'neck'``).
        teacher: teacher module path.
        adaptor: ``None`` (default; channels must match, as in the paper)
            or an adaptor config such as ``dict(type='ConvAdaptor')``.
        loss_weight: multiplier; 6 (two-stage) or 10 (RetinaNet) in the
            paper.
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(pkd=dict(
        ...     type='PearsonFeatureKD', student='neck',
        ...     teacher='neck', loss_weight=10))
    """

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        student_levels = self.align(student_levels, teacher_levels)
        return sum(pearson_feature_loss(s, t)
                   for s, t in zip(student_levels, teacher_levels))
