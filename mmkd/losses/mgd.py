"""Masked generative distillation, MGD (Yang et al., ECCV 2022).

Random locations of the (adapted) student map are zeroed, each with
probability λ, and a generation block ``G`` (3×3 conv, ReLU, 3×3 conv)
must produce the teacher's *whole* map from what is left:

    M ~ Bernoulli(1 − λ) per location (N, 1, H, W)
    L = α · Σ (G(M ⊙ A(F^S)) − F^T)² / N

summed over channels and locations, divided by the batch size N; levels
are summed. Detection defaults (the authors' configs): α = 2e-5,
λ = 0.65. ``A`` is an optional 1×1 adaptor (the authors' align conv when
channels differ). The block is trained with the student and dropped
after training.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..registry import MODELS
from ..utils.validation import check_fraction
from .aligned import AlignedFeatureTerm


def random_spatial_mask(shape: Sequence[int], ratio: float,
                        device: torch.device,
                        generator: Optional[torch.Generator] = None
                        ) -> torch.Tensor:
    """A float32 (N, 1, H, W) keep-mask: each location is 0 with
    probability ``ratio`` (MGD's λ) and 1 otherwise.

    Args:
        shape: (N, C, H, W) of the map to mask.
        ratio: λ, the expected share of zeroed locations.
        device: where the mask is drawn.
        generator: a ``torch.Generator`` on ``device``; the global one by
            default (seeded by the Runner's ``randomness``).
    """
    n, _, h, w = shape
    draw = torch.rand((n, 1, h, w), device=device, generator=generator)
    return (draw >= ratio).float()


def masked_generation_loss(student: torch.Tensor, teacher: torch.Tensor,
                           generation: nn.Module,
                           keep: torch.Tensor) -> torch.Tensor:
    """``Σ (G(keep ⊙ s) − t)² / N`` in float32.

    Args:
        student: (N, C, H, W) student map, at the teacher's size.
        teacher: (N, C, H, W) teacher map.
        generation: the generation block ``G``.
        keep: (N, 1, H, W) mask of the locations kept.
    """
    generated = generation(student.float() * keep)
    return (generated.float() - teacher.float()).pow(2).sum() / \
        teacher.shape[0]


def generation_block(channels: int) -> nn.Sequential:
    """MGD's generation block: 3×3 conv, ReLU, 3×3 conv, C → C."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, kernel_size=3, padding=1))


@MODELS.register_module()
class MaskedGenerativeKD(AlignedFeatureTerm):
    """MGD: the teacher's map generated from a randomly masked student map
    (Yang et al., ECCV 2022).

    One generation block per level read (e.g. every FPN output of
    ``'neck'``); see :mod:`mmkd.losses.mgd` for the formula. Works for
    detectors and segmentors alike (no ground truth is used). The mask
    is drawn from the global RNG every step, so runs seeded through the
    Runner's ``randomness`` repeat.

    Args:
        student: student module path (e.g. ``'neck'``).
        teacher: teacher module path.
        mask_ratio: λ, the share of masked locations, in [0, 1).
            Default 0.65 (detection).
        adaptor: ``None`` (default; channels must match) or e.g.
            ``dict(type='ConvAdaptor')`` when channels differ.
        loss_weight: α. Default 2e-5 (detection).
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(mgd=dict(
        ...     type='MaskedGenerativeKD', student='neck', teacher='neck',
        ...     mask_ratio=0.65, loss_weight=2e-5))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 mask_ratio: float = 0.65,
                 adaptor: Optional[dict] = None,
                 loss_weight: float = 2e-5,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, adaptor, loss_weight,
                         warmup_iters)
        self.mask_ratio = check_fraction(mask_ratio, 'mask_ratio')
        if self.mask_ratio >= 1:
            raise ValueError('mask_ratio must be below 1 (1 masks every '
                             'location); MGD uses 0.65 for detection.')
        self.generations = nn.ModuleList()

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        super().setup(student_levels, teacher_levels, student_model)
        for t in teacher_levels:
            self.generations.append(generation_block(t.shape[1]))

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        student_levels = self.align(student_levels, teacher_levels)
        total = teacher_levels[0].new_zeros((), dtype=torch.float32)
        for s, t, generation in zip(student_levels, teacher_levels,
                                    self.generations):
            keep = random_spatial_mask(t.shape, self.mask_ratio, t.device)
            total = total + masked_generation_loss(s, t, generation, keep)
        return total
