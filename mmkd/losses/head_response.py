"""Classification terms read from a dense head, prior by prior.

- :class:`HeadClassificationKD`: softened-softmax KD of the class scores
  in a region (LD's classification KD in the main region).
- :class:`BackgroundWeightedSoftTargets`: the weighted soft cross-entropy
  of Chen et al. (NeurIPS 2017), with its sigmoid-head equivalent.
- :class:`BinaryClassificationKD`: BCKD's per-class binary KD (Yang et
  al., ICCV 2023).

The class-KD terms (these two and :class:`~.decoupled_kd.DecoupledHeadKD`)
take ``standardize_logits=True`` for the logit standardisation of Sun et
al. (CVPR 2024), see :func:`standardize_logits`; off by default.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..heads.predictions import DensePredictions
from ..heads.regions import assigner_topk, check_region, region_mask
from ..registry import MODELS
from .dense_head_term import DenseHeadTerm


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """(N, C) logits z-scored over the class dimension of each row.

    ``(z − mean_c z) / (std_c z + eps)`` with the unbiased std, as the
    reference code of Sun et al. (CVPR 2024, "Logit Standardization in
    Knowledge Distillation") computes it; the temperature applied after
    it is then a *base* temperature (2 in most of their CIFAR-100 runs).
    A row is one prior: for a softmax head the C logits of its softmax
    (background included), for a per-class sigmoid head its C class
    logits, z-scored together although each feeds its own sigmoid. The
    student's mean and std stay in the graph (gradients pass through
    them), as in the reference code.
    """
    mean = logits.mean(1, keepdim=True)
    std = logits.std(1, keepdim=True)
    return (logits - mean) / (std + eps)


def check_class_kd_args(temperature: float,
                        standardize: bool = False) -> None:
    """Refuse a class-KD term's temperature and standardisation flag."""
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}.')
    if not isinstance(standardize, bool):
        raise TypeError('standardize_logits is True or False, got '
                        f'{standardize!r}.')


def check_standardizable(term, *heads) -> None:
    """z-scoring over classes needs at least two logits a prior."""
    for head in heads:
        channels = getattr(head, 'cls_out_channels', None)
        if channels is not None and channels < 2:
            raise ValueError(
                f'Term {term.name!r} ({type(term).__name__}): '
                'standardize_logits z-scores the class logits of each '
                f'prior, but {type(head).__name__} predicts {channels} '
                'logit a prior (e.g. an RPN head); set '
                'standardize_logits=False.')


def softened_logits(student: Tensor, teacher: Tensor, temperature: float,
                    standardize: bool) -> Tuple[Tensor, Tensor]:
    """Both sides optionally z-scored (:func:`standardize_logits`), then
    divided by the temperature; the teacher detached. Nothing is
    computed for ``temperature = 1`` without standardisation."""
    teacher = teacher.detach()
    if standardize:
        student = standardize_logits(student)
        teacher = standardize_logits(teacher)
    if temperature != 1:
        student, teacher = student / temperature, teacher / temperature
    return student, teacher


def softmax_kd(student: Tensor, teacher: Tensor,
               temperature: float) -> Tensor:
    """(N,) ``τ²·mean_c KL(softmax(t/τ) ‖ softmax(s/τ))`` per row, the
    reduction of MMDetection's ``KnowledgeDistillationKLDivLoss``."""
    log_s = F.log_softmax(student / temperature, dim=1)
    p_t = F.softmax(teacher.detach() / temperature, dim=1)
    return F.kl_div(log_s, p_t, reduction='none').mean(1) * temperature**2


def weighted_soft_cross_entropy(student: Tensor, teacher: Tensor,
                                background_weight: float,
                                use_sigmoid: bool,
                                temperature: float = 1.0) -> Tensor:
    """(N,) Chen et al.'s soft cross-entropy to the teacher, per prior.

    Softmax heads (background last): ``−Σ_c w_c·P_t,c·log P_s,c`` with
    ``w_bg = background_weight``, ``w_c = 1`` otherwise. Sigmoid heads (no
    background class): per class a binary cross-entropy to ``σ(t_c)`` whose
    negative side carries the weight,
    ``−Σ_c [p_t,c·log σ(s_c) + w_0·(1 − p_t,c)·log(1 − σ(s_c))]``.
    Both at temperature ``temperature``.
    """
    teacher = teacher.detach()
    if temperature != 1:
        student, teacher = student / temperature, teacher / temperature
    if use_sigmoid:
        # −[p·log σ(s) + w_0·(1 − p)·log σ(−s)] = λ·BCE(s, q) with
        # λ = p + w_0·(1 − p) and q = p/λ, both from the teacher: one
        # fused op over every anchor x class of a dense head
        with torch.no_grad():
            p_t = teacher.sigmoid()
            scale = p_t * (1 - background_weight) + background_weight
            target = p_t / scale.clamp(min=torch.finfo(scale.dtype).tiny)
        return F.binary_cross_entropy_with_logits(
            student, target, weight=scale, reduction='none').sum(1)
    weights = student.new_ones(student.shape[1])
    weights[-1] = background_weight
    return -(weights * F.softmax(teacher, 1) *
             F.log_softmax(student, 1)).sum(1)


def check_soft_target_args(mu: float, background_weight: float,
                           temperature: float) -> None:
    """Refuse arguments outside Chen et al.'s soft-target recipe."""
    if not 0 < mu <= 1 or background_weight < 0 or temperature <= 0:
        raise ValueError(
            'need 0 < mu <= 1, background_weight >= 0 and temperature '
            f'> 0; got {mu}, {background_weight}, {temperature}.')


def mixed_soft_target_loss(student: Tensor, teacher: Tensor, valid: Tensor,
                           background_weight: float, use_sigmoid: bool,
                           temperature: float, mu: float,
                           normalizer: Optional[Union[float, Tensor]] = None
                           ) -> Tensor:
    """Chen et al.'s soft cross-entropy, summed over the ``valid`` rows,
    divided by ``normalizer`` (default: their count, a mean) and scaled by
    ``(1 - mu) / mu``: added to the head's own hard loss it gives
    ``μ·L_hard + (1 − μ)·L_soft`` up to the factor ``1/μ``."""
    soft = weighted_soft_cross_entropy(student, teacher, background_weight,
                                       use_sigmoid, temperature)
    soft = torch.where(valid, soft, soft.new_zeros(()))
    if normalizer is None:
        normalizer = valid.sum().clamp(min=1)
    return soft.sum() / normalizer * (1 - mu) / mu


def binary_kd(student: Tensor, teacher: Tensor, beta: float) -> Tensor:
    """(N,) BCKD's ``Σ_c BCE(s_c, σ(t_c))·|σ(t_c) − σ(s_c)|^β`` per row.

    The modulating factor is not detached, as in the quality focal loss
    it is modelled on.
    """
    p_t = teacher.detach().sigmoid()
    bce = F.binary_cross_entropy_with_logits(student, p_t, reduction='none')
    gap = (p_t - student.sigmoid()).abs()
    return (bce * (gap if beta == 1 else gap.pow(beta))).sum(1)


def positive_count(avg_factor: Union[float, Tensor]) -> Union[float, Tensor]:
    """The head's ``avg_factor``, floored at 1."""
    if isinstance(avg_factor, Tensor):
        return avg_factor.clamp(min=1)
    return max(float(avg_factor), 1.0)


@MODELS.register_module()
class HeadClassificationKD(DenseHeadTerm):
    """Class-score KD on a dense head's priors, as LD's classification KD.

    ``τ²·KL(softmax(t/τ) ‖ softmax(s/τ))`` over the head's class logits,
    averaged over classes (as MMDetection's ``KnowledgeDistillationKLDivLoss``)
    and over the region's priors. LD (Zheng et al., CVPR 2022) uses it on
    the main region with τ = 2 and weight 10.

    With ``standardize_logits=True`` (Sun et al., CVPR 2024) both sides'
    logits are first z-scored over the C logits of each prior
    (:func:`standardize_logits`) and τ is the base temperature applied
    after it (the authors' 2; they also raise the KD weight, 0.9 → 9 on
    CIFAR-100, which is left to ``loss_weight``).

    Args:
        region: ``'main'`` (positives, default), ``'valid'`` (every prior
            the head's classification loss counts) or ``'valuable'``.
        temperature: τ. Default 2.
        standardize_logits: z-score the logits before τ. Default False.
        head: the student's dense head path. Default ``'bbox_head'``.
        teacher_head: the teacher's, defaults to ``head``.
        loss_weight: 10 in LD.
        warmup_iters: switched off for the first N iterations.

    Examples:
        >>> distill = dict(cls_kd=dict(type='HeadClassificationKD',
        ...                            temperature=2, loss_weight=10))
        >>> standardized = dict(cls_kd=dict(
        ...     type='HeadClassificationKD', standardize_logits=True,
        ...     temperature=2, loss_weight=10))
    """

    def __init__(self,
                 region: str = 'main',
                 temperature: float = 2.0,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 10.0,
                 warmup_iters: int = 0,
                 standardize_logits: bool = False) -> None:
        super().__init__(head, teacher_head, loss_weight, warmup_iters)
        check_class_kd_args(temperature, standardize_logits)
        self.region = check_region(region)
        self.temperature = temperature
        self.standardize_logits = standardize_logits

    def check_heads(self, student_head, teacher_head) -> None:
        if self.standardize_logits:
            check_standardizable(self, student_head, teacher_head)

    def _kd(self, student: Tensor, teacher: Tensor) -> Tensor:
        if self.standardize_logits:
            student = standardize_logits(student)
            teacher = standardize_logits(teacher.detach())
        return softmax_kd(student, teacher, self.temperature)

    def prior_region(self, preds: DensePredictions) -> Tensor:
        return region_mask(preds, self.region, assigner_topk(preds))

    def loss(self, preds: DensePredictions) -> Tensor:
        mask = self.prior_region(preds)
        if self.region == 'valid':
            # nearly every prior: masking all rows is cheaper than
            # gathering them and needs no host synchronisation on a GPU
            kd = self._kd(preds.cls_student, preds.cls_teacher)
            kd = torch.where(mask, kd, kd.new_zeros(()))
            return kd.sum() / mask.sum().clamp(min=1)
        rows = preds.select(mask)
        kd = self._kd(rows.cls_student, rows.cls_teacher)
        return kd.sum() / max(kd.shape[0], 1)


@MODELS.register_module()
class BackgroundWeightedSoftTargets(DenseHeadTerm):
    """Background-weighted soft targets (Chen et al., NeurIPS 2017).

    The paper trains ``μ·L_hard + (1 − μ)·L_soft`` with
    ``L_soft = −Σ_c w_c·P_t,c·log P_s,c`` and background weight
    ``w_0 = 1.5`` (see :func:`weighted_soft_cross_entropy`, also for the
    sigmoid-head form, where the negative side of every class is
    weighted). The user's head loss ``L_hard`` is left as configured, so
    this term returns ``(1 − μ)/μ · L_soft``: the sum has the paper's
    ``μ : (1 − μ)`` ratio, the classification part scaled by ``1/μ``
    (for μ = 0.5, the default, twice the paper's sum; μ is unverified).

    ``L_soft`` is summed over the priors the head's classification loss
    counts (label weight > 0) and divided by that loss's own normaliser,
    its ``avg_factor`` (``normalizer='avg_factor'``, the default), so the
    ratio μ : (1 − μ) holds whatever the image size. For a sampled head
    (an RPN: the paper's setting) that is the sampled anchors, the mean
    the paper takes; a dense one-stage head (RetinaNet, ATSS, GFL) divides
    by its positives. ``normalizer='priors'`` averages over all counted
    priors instead (mmkd before 2026-12-07): on a dense head that weighs
    the soft term by positives/priors against the hard loss, 1/28 on the
    128×128 digits (97 positives among 2688 priors a batch of 8, measured
    by ``tools/benchmark/dense_head_stats.py``) and less on COCO-sized
    images, whose priors grow with the area faster than their positives;
    that is why it barely moved the digits GFL student
    (docs/evidence.md).

    Args:
        mu: μ in (0, 1]. Default 0.5.
        background_weight: w₀. Default 1.5.
        temperature: softening of both sides. Default 1 (the paper's).
        normalizer: ``'avg_factor'`` (the head's own classification
            normaliser) or ``'priors'`` (the counted priors). Default
            ``'avg_factor'``.
        head: the student's dense head path. Default ``'bbox_head'``;
            ``'rpn_head'`` for a two-stage detector's RPN.
        teacher_head: the teacher's, defaults to ``head``.
        loss_weight: multiplies the term. Default 1.
        warmup_iters: switched off for the first N iterations.

    Examples:
        >>> distill = dict(soft=dict(type='BackgroundWeightedSoftTargets',
        ...                          mu=0.5, background_weight=1.5))
    """

    NORMALIZERS = ('avg_factor', 'priors')

    def __init__(self,
                 mu: float = 0.5,
                 background_weight: float = 1.5,
                 temperature: float = 1.0,
                 normalizer: str = 'avg_factor',
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(head, teacher_head, loss_weight, warmup_iters)
        check_soft_target_args(mu, background_weight, temperature)
        if normalizer not in self.NORMALIZERS:
            raise ValueError(f'normalizer must be one of {self.NORMALIZERS}'
                             f', got {normalizer!r}.')
        self.mu = mu
        self.background_weight = background_weight
        self.temperature = temperature
        self.normalizer = normalizer

    def loss(self, preds: DensePredictions) -> Tensor:
        return mixed_soft_target_loss(
            preds.cls_student, preds.cls_teacher, preds.valid,
            self.background_weight, preds.use_sigmoid, self.temperature,
            self.mu, positive_count(preds.avg_factor)
            if self.normalizer == 'avg_factor' else None)


@MODELS.register_module()
class BinaryClassificationKD(DenseHeadTerm):
    """Binary classification KD of BCKD (Yang et al., ICCV 2023).

    Sigmoid detectors score every class independently, so BCKD distils
    them as per-class binary problems instead of a softmax over classes:
    ``Σ_c BCE(s_c, σ(t_c))·|σ(t_c) − σ(s_c)|^β`` (see :func:`binary_kd`),
    summed over every prior the head's classification loss counts and
    divided by the head's own ``avg_factor`` (its positives), as its
    quality focal loss is (the normalisation of the reference code was not
    verified).

    BCKD has no temperature (τ = 1, the default). A temperature τ ≠ 1
    divides both sides' logits and multiplies the loss by τ² (Hinton's
    gradient-scale convention). ``standardize_logits=True`` is the logit
    standardisation of Sun et al. (CVPR 2024) on a sigmoid head: the C
    class logits of each prior are z-scored together
    (:func:`standardize_logits`) before τ (then a base temperature) and
    the per-class sigmoids. Caveat: this drops the absolute level of a
    prior's logits (all classes low: background), which a sigmoid head
    scores and a softmax does not; the student then learns only how the
    teacher ranks the classes at each prior. No published detection
    result exists for it.

    Args:
        beta: β of the modulating factor. Default 1.
        head: the student's dense head path. Default ``'bbox_head'``.
        teacher_head: the teacher's, defaults to ``head``.
        loss_weight: multiplies the term. Default 1.
        warmup_iters: switched off for the first N iterations.
        temperature: τ. Default 1 (BCKD's).
        standardize_logits: z-score the logits before τ. Default False.

    Examples:
        >>> distill = dict(
        ...     cls=dict(type='BinaryClassificationKD', beta=1.0),
        ...     box=dict(type='IoULocalizationKD', loss_weight=4.0))
        >>> standardized = dict(cls=dict(
        ...     type='BinaryClassificationKD', standardize_logits=True,
        ...     temperature=2.0))
    """

    def __init__(self,
                 beta: float = 1.0,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0,
                 temperature: float = 1.0,
                 standardize_logits: bool = False) -> None:
        super().__init__(head, teacher_head, loss_weight, warmup_iters)
        if beta < 0:
            raise ValueError(f'beta must be >= 0, got {beta}.')
        check_class_kd_args(temperature, standardize_logits)
        self.beta = beta
        self.temperature = temperature
        self.standardize_logits = standardize_logits

    def check_heads(self, student_head, teacher_head) -> None:
        self.require_sigmoid(student_head, teacher_head)
        if self.standardize_logits:
            check_standardizable(self, student_head, teacher_head)

    def loss(self, preds: DensePredictions) -> Tensor:
        student, teacher = softened_logits(
            preds.cls_student, preds.cls_teacher, self.temperature,
            self.standardize_logits)
        kd = binary_kd(student, teacher, self.beta)
        if self.temperature != 1:
            kd = kd * self.temperature**2
        kd = torch.where(preds.valid, kd * preds.label_weights,
                         kd.new_zeros(()))
        return kd.sum() / positive_count(preds.avg_factor)
