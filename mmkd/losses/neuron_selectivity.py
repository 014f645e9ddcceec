"""Neuron selectivity transfer, NST (Huang & Wang, 2017).

"Like What You Like: Knowledge Distill via Neuron Selectivity Transfer"
(arXiv:1707.01219). Each channel ``c`` of an image's map, its H×W vector
of responses, is L2-normalised, ``f_c = F_c / ‖F_c‖``: the channels are
samples of a distribution over "where the neuron fires". The student's
distribution is pulled to the teacher's by the squared maximum mean
discrepancy, per image:

    MMD² = mean_{i,i'} k(s_i, s_i') + mean_{j,j'} k(t_j, t_j')
           − 2 · mean_{i,j} k(s_i, t_j)

(all C_s² / C_t² / C_s·C_t pairs, the diagonal included), averaged over
the images. Kernels: polynomial ``(xᵀy + c)^d``, d = 2, c = 0 (the
paper's best, the default), linear ``xᵀy`` (MMD² = the squared distance
of the mean vectors) and Gaussian ``exp(−‖x − y‖² / (2σ²))``.

Checked against the authors' code (TuSimple/neuron-selectivity-transfer,
``symbol/transfer.py`` ``mmd_poly`` and ``config/cfgs.py``): spatial L2
normalisation (eps 1e-10), per image the means of the squared Gram
entries ``mean (S Sᵀ + c)²`` and ``mean (S Tᵀ + c)²`` over all channel
pairs, loss ``mean_ss − 2·mean_st`` (the constant teacher term dropped;
we keep it, so the value is a true MMD² ≥ 0 with the same gradient),
c = 0, weight ``kt_weight = 50`` applied as the gradient scale of each
image's loss (MXNet's ``MakeLoss``; the cross-entropy there is per image
too), i.e. λ = 50 on the per-image mean, not 50/2. The teacher's map is
its final stage (ResNet-101 ``bn1_output``, 2048 channels), the
student's Inception-BN's ``in5b`` BN output (1024 channels): channel
counts may differ, H×W must match (the student is resized here).
"""
from numbers import Integral, Real
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..registry import MODELS
from ..utils.validation import check_positive
from .aligned import AlignedFeatureTerm
from .attention import check_feature_maps

KERNELS = ('poly', 'linear', 'gaussian')


def _kernel_mean(x: torch.Tensor, y: torch.Tensor, kernel: str,
                 degree: int, coef: float, sigma: float) -> torch.Tensor:
    """Per image the mean of ``k(x_i, y_j)`` over all pairs: (N,)."""
    dot = torch.bmm(x, y.transpose(1, 2))  # (N, C_x, C_y)
    if kernel == 'linear':
        values = dot
    elif kernel == 'poly':
        values = (dot + coef).pow(degree)
    else:
        sq = (x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1).unsqueeze(1)
              - 2 * dot).clamp(min=0)
        values = torch.exp(-sq / (2 * sigma ** 2))
    return values.mean((1, 2))


def neuron_selectivity_loss(student: torch.Tensor, teacher: torch.Tensor,
                            kernel: str = 'poly', degree: int = 2,
                            coef: float = 0.0,
                            sigma: float = 1.0) -> torch.Tensor:
    """The squared MMD between the L2-normalised channel vectors of each
    image, averaged over the images, in float32.

    Args:
        student: (N, C_s, H, W).
        teacher: (N, C_t, H, W), the same N, H and W.
        kernel: ``'poly'``, ``'linear'`` or ``'gaussian'``.
        degree: d of the polynomial kernel.
        coef: c of the polynomial kernel.
        sigma: σ of the Gaussian kernel.
    """
    n = teacher.shape[0]
    s = F.normalize(student.float().reshape(n, student.shape[1], -1),
                    dim=2, eps=1e-10)
    t = F.normalize(
        teacher.detach().float().reshape(n, teacher.shape[1], -1), dim=2,
        eps=1e-10)
    args = (kernel, degree, coef, sigma)
    # float32 Gram matrices under --amp too (autocast would run bmm in
    # float16/bfloat16)
    with torch.autocast(s.device.type, enabled=False):
        mmd = (_kernel_mean(s, s, *args) + _kernel_mean(t, t, *args)
               - 2 * _kernel_mean(s, t, *args))
    return mmd.mean()


@MODELS.register_module()
class NeuronSelectivityTransfer(AlignedFeatureTerm):
    """NST: the squared MMD between the distributions of normalised
    channel activations (Huang & Wang, 2017).

    Per image and level, each channel's H×W vector is L2-normalised and
    ``MMD² = E k(s, s') + E k(t, t') − 2 E k(s, t)`` over the student's
    and the teacher's channels (all pairs, as the authors' code); the
    mean over images is summed over levels and multiplied by
    ``loss_weight`` (λ = 50 for the polynomial kernel in the authors'
    code). No adaptor: the channels are the samples, so their counts may
    differ; the student map is resized (bilinear) to the teacher's H×W.
    Computed in float32.

    Args:
        student: student module path (e.g. ``'backbone.layer4'``).
        teacher: teacher module path.
        kernel: ``'poly'`` (default, ``(xᵀy + coef)^degree``),
            ``'linear'`` (``xᵀy``) or ``'gaussian'``
            (``exp(−‖x − y‖² / (2·sigma²))``).
        degree: the polynomial degree, a whole number >= 1; 2 in the paper.
        coef: the polynomial's constant c, a number >= 0; 0 in the paper.
        sigma: the Gaussian bandwidth, a number > 0. The paper's value
            was not checked here; 1 by default (the vectors have unit
            length, so ``‖x − y‖² ≤ 4``).
        loss_weight: λ; 50 for the polynomial kernel (authors' code). The
            weights of the linear and Gaussian kernels were not checked.
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(nst=dict(
        ...     type='NeuronSelectivityTransfer',
        ...     student='backbone.layer4', teacher='backbone.layer4',
        ...     kernel='poly', loss_weight=50.0))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 kernel: str = 'poly',
                 degree: int = 2,
                 coef: float = 0.0,
                 sigma: float = 1.0,
                 loss_weight: float = 50.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, None, loss_weight, warmup_iters)
        if kernel not in KERNELS:
            raise ValueError(f'kernel must be one of {KERNELS}, got '
                             f'{kernel!r}.')
        if isinstance(degree, bool) or not isinstance(degree, Integral) \
                or degree < 1:
            raise ValueError(f'degree must be a whole number >= 1, got '
                             f'{degree!r}.')
        if isinstance(coef, bool) or not isinstance(coef, Real) \
                or not 0 <= coef < float('inf'):
            raise ValueError(f'coef must be a finite number >= 0, got '
                             f'{coef!r}.')
        self.kernel = kernel
        self.degree = int(degree)
        self.coef = float(coef)
        self.sigma = check_positive(sigma, 'sigma')

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        check_feature_maps(self, student_levels, teacher_levels)

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        student_levels = self.align(student_levels, teacher_levels)
        return sum(
            neuron_selectivity_loss(s, t, self.kernel, self.degree,
                                    self.coef, self.sigma)
            for s, t in zip(student_levels, teacher_levels))
