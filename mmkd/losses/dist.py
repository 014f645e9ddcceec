"""DIST: knowledge distillation from a stronger teacher (Huang et al.,
NeurIPS 2022), on dense score maps.

Rather than matching probabilities exactly (KL), DIST matches *relations*:
with ``p = softmax(z / τ)`` per pixel,

- inter-class: for every pixel, the Pearson correlation between the
  student's and the teacher's class vectors;
- intra-class: for every class, the Pearson correlation between the two
  maps over all pixels of the batch;

    L = τ² · (β · (1 − mean_pixels r_inter) + γ · (1 − mean_classes r_intra))

Defaults β = γ = 1, τ = 1 (the paper's segmentation setting). Being
invariant to scale and shift, it suits a teacher much stronger than the
student.
"""
from typing import List, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..adaptors import align_spatial
from ..registry import MODELS
from ..utils.validation import check_loss_weight, check_positive
from .base import DistillTerm


def pearson_distance(a: torch.Tensor, b: torch.Tensor,
                     dim: int) -> torch.Tensor:
    """``1 − r`` between ``a`` and ``b`` along ``dim`` (one value per
    remaining index), r the Pearson correlation."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    return 1 - F.cosine_similarity(a, b, dim=dim, eps=1e-8)


def dist_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              temperature: float = 1.0, beta: float = 1.0,
              gamma: float = 1.0) -> torch.Tensor:
    """The DIST loss of (N, K, H, W) score maps (or (N, K) logits), in
    float32."""
    k = teacher_logits.shape[1]
    s = F.softmax(student_logits.float() / temperature, dim=1)
    t = F.softmax(teacher_logits.float() / temperature, dim=1)
    s = s.movedim(1, -1).reshape(-1, k)  # (pixels, classes)
    t = t.movedim(1, -1).reshape(-1, k)
    inter = pearson_distance(s, t, dim=1).mean()
    intra = pearson_distance(s, t, dim=0).mean()
    return temperature ** 2 * (beta * inter + gamma * intra)


@MODELS.register_module()
class DISTKD(DistillTerm):
    """DIST on class score maps: inter- and intra-class Pearson relations.

    The student map is resized to the teacher's H×W; levels are summed.

    Args:
        student: student module path giving (N, K, H, W) logits.
        teacher: teacher module path, the same K classes.
        temperature: τ. Default 1.
        beta: inter-class weight β. Default 1.
        gamma: intra-class weight γ. Default 1.
        loss_weight: multiplier.
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(dist=dict(
        ...     type='DISTKD', student='decode_head.conv_seg',
        ...     teacher='decode_head.conv_seg'))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 temperature: float = 1.0,
                 beta: float = 1.0,
                 gamma: float = 1.0,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, loss_weight, warmup_iters)
        self.temperature = check_positive(temperature, 'temperature')
        self.beta = check_loss_weight(beta, 'beta')
        self.gamma = check_loss_weight(gamma, 'gamma')

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: torch.nn.Module) -> None:
        self.check_level_count(student_levels, teacher_levels)
        for s, t in zip(student_levels, teacher_levels):
            if s.dim() != 4 or t.dim() != 4 or s.shape[1] != t.shape[1]:
                raise ValueError(
                    f'Term {self.name!r}: DIST needs (N, K, H, W) score '
                    f'maps with the same K classes; student '
                    f'{self.student_spec} is {tuple(s.shape)}, teacher '
                    f'{self.teacher_spec} is {tuple(t.shape)}.')

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        return sum(
            dist_loss(align_spatial(s, t.shape[-2:]), t, self.temperature,
                      self.beta, self.gamma)
            for s, t in zip(student_levels, teacher_levels))
