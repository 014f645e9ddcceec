"""Decoupled KD (Zhao et al., CVPR 2022) for per-class sigmoid heads.

DKD writes softmax KD as ``KD = TCKD + (1 − p_t^T)·NCKD``: TCKD is the
binary KL of the target class's probability against the rest, NCKD the
KL of the distributions over the non-target classes, and the factor
``(1 − p_t^T)`` couples NCKD to the teacher's confidence. DKD drops the
coupling and trains ``α·TCKD + β·NCKD``. The authors' code (mdistiller,
``mdistiller/distillers/DKD.py`` and ``engine/cfg.py``) uses α = 1,
β = 8, τ = 4 and a 20-epoch linear warm-up on CIFAR-100, β = 0.5, τ = 1
and a 1-epoch warm-up on ImageNet; both sides are scaled by τ² and
summed over classes, averaged over samples.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..heads.predictions import DensePredictions
from ..heads.regions import assigner_topk, check_region, region_mask
from ..registry import MODELS
from .dense_head_term import DenseHeadTerm
from .head_response import (check_class_kd_args, check_standardizable,
                            positive_count, softened_logits)

#: the forms of the non-target part
NCKD_FORMS = ('binary', 'softmax')


def binary_kl(student: Tensor, teacher: Tensor) -> Tensor:
    """Elementwise ``KL(Bern(σ(t)) ‖ Bern(σ(s)))`` of logits, the teacher
    detached: the binary cross-entropy to ``σ(t)`` minus its entropy (so
    zero where the two agree)."""
    teacher = teacher.detach()
    p_t = teacher.sigmoid()
    cross = F.binary_cross_entropy_with_logits(student, p_t,
                                               reduction='none')
    entropy = F.binary_cross_entropy_with_logits(teacher, p_t,
                                                 reduction='none')
    return cross - entropy


def target_mask(labels: Tensor, num_classes: int) -> Tensor:
    """(N, C) bool one-hot of the assigned labels; a background prior
    (label ``num_classes``) has no target class (an all-false row)."""
    onehot = F.one_hot(labels.long().clamp(0, num_classes),
                       num_classes + 1)
    return onehot[:, :num_classes].bool()


def non_target_softmax_kl(student: Tensor, teacher: Tensor,
                          target: Tensor) -> Tensor:
    """(N,) ``KL(softmax(t_{≠y}) ‖ softmax(s_{≠y}))`` over each row's
    non-target logits (``target``: the (N, C) bool mask of its target
    class, none for a background row); 0 where a row has no non-target
    class."""
    teacher = teacher.detach()
    low = torch.finfo(student.dtype).min
    log_s = F.log_softmax(student.masked_fill(target, low), dim=1)
    log_t = F.log_softmax(teacher.masked_fill(target, low), dim=1)
    kl = log_t.exp() * (log_t - log_s)
    return torch.where(target, kl.new_zeros(()), kl).sum(1)


def decoupled_binary_kd(student: Tensor, teacher: Tensor, labels: Tensor,
                        alpha: float, beta: float,
                        nckd: str = 'binary') -> Tensor:
    """(N,) ``α·TCKD + β·NCKD`` per prior of (N, C) sigmoid logits (already
    softened), ``labels`` (N,) the assigned classes (C: background).

    - TCKD: :func:`binary_kl` of the target class, 0 at a background
      prior.
    - NCKD ``'binary'``: the sum of :func:`binary_kl` over the non-target
      classes (every class at a background prior); ``'softmax'``:
      :func:`non_target_softmax_kl`.
    """
    target = target_mask(labels, student.shape[1])
    kl = binary_kl(student, teacher)
    tckd = torch.where(target, kl, kl.new_zeros(())).sum(1)
    if nckd == 'binary':
        non_target = torch.where(target, kl.new_zeros(()), kl).sum(1)
    else:
        non_target = non_target_softmax_kl(student, teacher, target)
    return alpha * tckd + beta * non_target


@MODELS.register_module()
class DecoupledHeadKD(DenseHeadTerm):
    """Decoupled KD (Zhao et al., CVPR 2022) on a per-class sigmoid head.

    Adapted to the sigmoid / quality-focal classifiers of GFL, ATSS,
    RetinaNet and FCOS (see the module docstring for the softmax form).
    At each prior of the region, with σ the per-class sigmoid at
    temperature τ and y the class the student's own assigner gave the
    prior this step (``DensePredictions.labels``):

    - **TCKD** ``= KL(Bern(σ(t_y/τ)) ‖ Bern(σ(s_y/τ)))``, the binary KD of
      the target class's probability: the softmax TCKD compares
      ``[p_y, 1 − p_y]`` and a sigmoid score is already such a pair.
    - **NCKD**, ``nckd='binary'`` (default): ``Σ_{c≠y} KL(Bern(σ(t_c/τ))
      ‖ Bern(σ(s_c/τ)))``, per-class binary as BCKD does for plain KD. A
      sigmoid head has no shared normaliser: per-class binary KD *is*
      TCKD + NCKD with no ``(1 − p_y)`` coupling, so decoupling here means
      weighting the two parts apart (α, β), and the non-target classes
      keep their absolute scores, what suppresses false positives.
      ``nckd='softmax'``: the paper's literal NCKD, the KL of the softmax
      over the non-target logits: it distils only how the teacher ranks
      the other classes and drops their level (left to the head's own
      loss). An ablation, not the default.
    - **Background priors** (label C) have no target class: TCKD is 0
      there and every class is a non-target one (NCKD only). The
      assigner said nothing is there, and the head's own loss trains
      every class towards 0; taking the teacher's top class instead
      would invent a target the student's assignment rejected.

    ``loss = τ²·Σ_priors w·(α·TCKD + β·NCKD) / avg_factor``, summed over
    the region's priors (``w``: the head's label weights) and divided by
    the head's own ``avg_factor`` (its positives, floored at 1) as
    :class:`~.head_response.BinaryClassificationKD` and the head's
    quality focal loss are.

    Defaults: α = 1, β = 8 (the paper's CIFAR-100 setting, named by the
    issue); τ = 1 (the authors' ImageNet setting rather than CIFAR's 4:
    a sigmoid head's background logits, −4 … −8 for most classes, are
    softened at τ = 4 to probabilities of 0.1-0.3, which multiplies the
    weight of the thousands of easy negatives by ~50, and BCKD and
    CrossKD distil sigmoid heads at τ = 1). mdistiller's linear warm-up
    of the weight is not reproduced: ``warmup_iters`` switches the term
    off for the first iterations. No published detection result exists
    for DKD on sigmoid heads; BCKD (GFL-R50 40.1 → 43.2) and CrossKD
    (40.2 → 43.7) are the figures to set it against.

    ``standardize_logits=True`` adds the logit standardisation of Sun et
    al. (CVPR 2024): each prior's C logits are z-scored over the class
    dimension (:func:`~.head_response.standardize_logits`) before τ (then
    a base temperature, the authors' 2); see
    :class:`~.head_response.BinaryClassificationKD` for what that drops
    on a sigmoid head.

    Args:
        alpha: weight of TCKD. Default 1.
        beta: weight of NCKD. Default 8.
        temperature: τ. Default 1.
        region: ``'valid'`` (every prior the head's classification loss
            counts, default), ``'main'`` (the student's positives) or
            ``'valuable'`` (LD's valuable localization region, negatives
            only: NCKD only).
        nckd: ``'binary'`` (default) or ``'softmax'``.
        standardize_logits: z-score the logits before τ. Default False.
        head: the student's dense head path. Default ``'bbox_head'``.
        teacher_head: the teacher's, defaults to ``head``.
        loss_weight: multiplies the term. Default 1.
        warmup_iters: switched off for the first N iterations.

    Examples:
        >>> distill = dict(
        ...     cls=dict(type='DecoupledHeadKD', alpha=1.0, beta=8.0,
        ...              temperature=1.0, region='valid'),
        ...     box=dict(type='IoULocalizationKD', loss_weight=4.0))
    """

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 temperature: float = 1.0,
                 region: str = 'valid',
                 nckd: str = 'binary',
                 standardize_logits: bool = False,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(head, teacher_head, loss_weight, warmup_iters)
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError('alpha and beta must be >= 0 and not both 0; '
                             f'got {alpha}, {beta}.')
        if nckd not in NCKD_FORMS:
            raise ValueError(f'nckd must be one of {NCKD_FORMS}, got '
                             f'{nckd!r}.')
        check_class_kd_args(temperature, standardize_logits)
        self.alpha = alpha
        self.beta = beta
        self.temperature = temperature
        self.region = check_region(region, f'{type(self).__name__}: ')
        self.nckd = nckd
        self.standardize_logits = standardize_logits

    def check_heads(self, student_head, teacher_head) -> None:
        self.require_sigmoid(student_head, teacher_head)
        if self.standardize_logits:
            check_standardizable(self, student_head, teacher_head)

    def per_prior(self, preds: DensePredictions) -> Tensor:
        """(N,) ``τ²·(α·TCKD + β·NCKD)`` of every row of ``preds``."""
        student, teacher = softened_logits(
            preds.cls_student, preds.cls_teacher, self.temperature,
            self.standardize_logits)
        kd = decoupled_binary_kd(student, teacher, preds.labels,
                                 self.alpha, self.beta, self.nckd)
        return kd * self.temperature**2

    def prior_region(self, preds: DensePredictions) -> Tensor:
        return region_mask(preds, self.region, assigner_topk(preds))

    def loss(self, preds: DensePredictions) -> Tensor:
        mask = self.prior_region(preds)
        if self.region == 'valid':
            # nearly every prior: masked, no gather, no host round trip
            kd = self.per_prior(preds) * preds.label_weights
            kd = torch.where(mask, kd, kd.new_zeros(()))
        else:
            rows = preds.select(mask)
            kd = self.per_prior(rows) * rows.label_weights
        return kd.sum() / positive_count(preds.avg_factor)
