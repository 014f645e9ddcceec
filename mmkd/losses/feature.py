"""Feature imitation: regress teacher features from adapted student features.

Hint learning / FitNets (Romero et al., ICLR 2015), the hint loss of Chen et
al. (NeurIPS 2017, ``‖V − A(Z)‖²``, γ = 0.5) and fine-grained feature
imitation FGFI (Wang et al., CVPR 2019, masked, λ = 0.01) share one form:
a squared error between ``A(student)`` and the teacher, optionally weighted
per location by a mask.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..registry import MODELS
from .aligned import AlignedFeatureTerm

NORMALIZATIONS = ('mean', 'fgfi')


def weighted_squared_error(student: torch.Tensor, teacher: torch.Tensor,
                           weight: Optional[torch.Tensor] = None
                           ) -> torch.Tensor:
    """``Σ w·(s − t)²`` over every element, in float32.

    Args:
        student: (N, C, H, W).
        teacher: (N, C, H, W).
        weight: (N, 1, H, W) per-location weights, or ``None`` for ones.
    """
    diff = (student.float() - teacher.float()).pow(2)
    if weight is not None:
        diff = diff * weight.float()
    return diff.sum()


@MODELS.register_module()
class FeatureImitation(AlignedFeatureTerm):
    """Squared-error imitation of teacher features through adaptors.

    One adaptor per level (a 1×1 conv by default) maps student channels to
    teacher channels; both counts are inferred by probing the models. The
    adapted student map is resized to the teacher's H×W when they differ.

    Normalisation, with ``W`` the mask (ones without a mask), ``C_l`` the
    channels of level ``l``:

    - ``'mean'`` (default): per level the weighted mean
      ``Σ W·(A(s) − t)² / (C_l · ΣW)``, summed over levels. Without a mask
      this is ``F.mse_loss`` per level.
    - ``'fgfi'``: FGFI's ``Σ_l Σ W·(A(s) − t)² / (2·N_p)``, ``N_p = ΣW``
      over all levels (the positives, floored at 1 as the paper counts
      points), channels summed.

    A batch whose mask is empty gives a loss of 0.

    Mixed precision: records may be float16/bfloat16 (the student under
    ``--amp``, the teacher under ``teacher=dict(..., autocast=True)``) and
    mixed with float32 ones; the adaptors follow autocast, and the errors,
    counts and the loss are computed in float32.

    Args:
        student: student module path (e.g. ``'neck'``).
        teacher: teacher module path.
        adaptor: adaptor config (``in``/``out`` channels are filled in), or
            ``None`` to compare raw features (channels must then match).
        mask: mask config, e.g. ``dict(type='FGFIMask', thr=0.5)``.
        normalize: ``'mean'`` or ``'fgfi'``, see above.
        loss_weight: multiplier; FGFI uses 0.01, Chen et al. γ = 0.5.
        warmup_iters: iterations with the term switched off.
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 adaptor: Optional[dict] = dict(type='ConvAdaptor'),
                 mask: Optional[dict] = None,
                 normalize: str = 'mean',
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, adaptor, loss_weight,
                         warmup_iters)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f'normalize must be one of {NORMALIZATIONS}, '
                             f'got {normalize!r}.')
        self.normalize = normalize
        self.mask = MODELS.build(dict(mask, _scope_='mmkd')) if mask else None

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        super().setup(student_levels, teacher_levels, student_model)
        if self.mask is not None:
            self.mask.setup(student_model)

    def location_weights(self, teacher_levels: List[torch.Tensor],
                         data_samples: Sequence[BaseDataElement]
                         ) -> Optional[List[torch.Tensor]]:
        if self.mask is None:
            return None
        return self.mask([t.shape for t in teacher_levels], data_samples,
                         teacher_levels[0].device)

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        student_levels = self.align(student_levels, teacher_levels)
        weights = self.location_weights(teacher_levels, data_samples) or \
            [None] * len(teacher_levels)
        errors = [weighted_squared_error(s, t, w) for s, t, w in
                  zip(student_levels, teacher_levels, weights)]
        # float32 counts: a bfloat16 teacher record must not round N·H·W
        counts = [w.float().sum() if w is not None else
                  t.new_tensor(t.numel() / t.shape[1], dtype=torch.float32)
                  for t, w in zip(teacher_levels, weights)]
        if self.normalize == 'fgfi':
            total = sum(counts)
            return sum(errors) / (2 * total.clamp(min=1))
        # an empty mask has zero error too, so clamping gives exactly 0
        return sum(e / (t.shape[1] * c.clamp(min=1e-6))
                   for e, t, c in zip(errors, teacher_levels, counts))
