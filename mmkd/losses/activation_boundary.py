"""Activation-boundary distillation, AB (Heo et al., AAAI 2019).

"Knowledge Transfer via Distillation of Activation Boundaries Formed by
Hidden Neurons". What the student should copy is *which* neurons of the
teacher fire, the sign pattern of its pre-ReLU responses, not their
magnitude. The non-differentiable pattern match is replaced by a
hinge-squared loss with margin m on the adapted student response
``s = A(S)`` (a 1×1 conv + BN, the authors' connector), per element:

    ρ(t)·(m − s)²₊ + (1 − ρ(t))·(m + s)²₊,   ρ(t) = 1[t > 0],  m = 1

which is zero once ``s ≥ m`` where the teacher fires and ``s ≤ −m``
where it does not. Only the teacher's sign counts, so its record may be
taken before or after its ReLU (the signs agree); the student is read
*before* its ReLU (``record='input'`` of the ReLU module, or the output
of the conv/BN before it, or a conv without activation such as an FPN
output), so that gradients reach the inactive neurons too.

Checked against the authors' code (bhheo/AB_distillation,
``criterion_alternative_L2``): ``(s + m)²·[s > −m ∧ t ≤ 0] +
(s − m)²·[s ≤ m ∧ t > 0]``, summed over every element and divided by the
batch size per layer; the layers weighted 1, 1/2, 1/4 (1/8) from the
deepest, and the total ×3/1000 (CIFAR-10) or /1000 (ImageNet → MIT
scenes), in a distillation-only initialisation stage before ordinary
training. That normalisation is ``normalize='batch'`` here; the default
``'mean'`` divides by the number of elements instead, because a dense
detection map holds far more elements than a CIFAR one (an 800×1333 FPN
P3 level ≈ 4.3 M per image), which would make the batch sum dwarf the
task losses trained alongside.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..registry import MODELS
from ..utils.validation import check_positive
from .aligned import AlignedFeatureTerm

NORMALIZATIONS = ('mean', 'batch')


def activation_boundary_loss(student: torch.Tensor, teacher: torch.Tensor,
                             margin: float = 1.0) -> torch.Tensor:
    """``Σ ρ(t)·(m − s)²₊ + (1 − ρ(t))·(m + s)²₊`` over every element,
    ``ρ(t) = 1[t > 0]``, in float32 (no boolean indexing).

    Args:
        student: (N, C, H, W) adapted pre-ReLU student responses.
        teacher: (N, C, H, W) teacher responses (only their sign counts).
        margin: m.
    """
    s = student.float()
    fires = teacher.detach() > 0
    on = F.relu(margin - s).pow(2)
    off = F.relu(margin + s).pow(2)
    return torch.where(fires, on, off).sum()


@MODELS.register_module()
class ActivationBoundaryKD(AlignedFeatureTerm):
    """AB: the teacher's activation pattern transferred by a hinge-squared
    loss on pre-ReLU responses (Heo et al., AAAI 2019).

    Per level ``Σ ρ(T)·(m − A(S))²₊ + (1 − ρ(T))·(m + A(S))²₊`` with
    ``ρ(T) = 1[T > 0]`` and m = 1, through an adaptor A (the authors'
    connector: a 1×1 conv without bias + BN, channels inferred), the
    student resized to the teacher's H×W; levels are summed and the sum
    multiplied by ``loss_weight``.

    Normalisation of each level's sum:

    - ``'mean'`` (default): divided by the number of elements
      (N·C·H·W), so a level's loss is about 1 for an untrained student
      and 0 when every sign is matched with margin m.
    - ``'batch'``: divided by N, the authors' code; with their weights
      ``loss_weight`` 3e-3 (CIFAR-10) or 1e-3 (ImageNet), and the
      per-layer weights 1, 1/2, 1/4 (deepest first) given as one term per
      layer.

    Args:
        student: student module path, read before its ReLU, e.g.
            ``'neck'`` (FPN outputs carry no activation) or
            ``dict(path='backbone.layer4.1.relu', record='input')``.
        teacher: teacher module path (before or after its ReLU).
        margin: m, a number > 0; 1 in the paper.
        adaptor: the adaptor config (channels filled in), by default
            ``dict(type='ConvAdaptor', norm_cfg=dict(type='BN'))``; or
            ``None`` when channels match.
        normalize: ``'mean'`` or ``'batch'``, see above.
        loss_weight: multiplier; not published for detection (1 for
            ``'mean'`` in our configs, untuned).
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(ab=dict(
        ...     type='ActivationBoundaryKD', student='neck',
        ...     teacher='neck', margin=1.0, loss_weight=1.0))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 margin: float = 1.0,
                 adaptor: Optional[dict] = dict(
                     type='ConvAdaptor', norm_cfg=dict(type='BN')),
                 normalize: str = 'mean',
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, adaptor, loss_weight,
                         warmup_iters)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f'normalize must be one of {NORMALIZATIONS}, '
                             f'got {normalize!r}.')
        self.margin = check_positive(margin, 'margin')
        self.normalize = normalize

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        student_levels = self.align(student_levels, teacher_levels)
        total = 0
        for s, t in zip(student_levels, teacher_levels):
            count = t.numel() if self.normalize == 'mean' else t.shape[0]
            total = total + activation_boundary_loss(
                s, t, self.margin) / count
        return total
