"""Relational knowledge distillation, RKD (Park et al., CVPR 2019).

Over a set of K embeddings ``t_1..t_K`` (teacher) and ``s_1..s_K``
(student, the same K items; the two dimensions may differ):

- distance-wise: ``ψ_D(t_i, t_j) = ‖t_i − t_j‖₂ / μ``, μ the mean distance
  of the distinct pairs, and ``L_D = 1/K² Σ_{i,j} huber(ψ_D(s_i, s_j) −
  ψ_D(t_i, t_j))``;
- angle-wise: ``ψ_A(t_i, t_j, t_k) = cos ∠t_i t_j t_k = ⟨e_ij, e_kj⟩``,
  ``e_ij = (t_i − t_j) / ‖t_i − t_j‖₂``, and ``L_A = 1/K³ Σ_{i,j,k}
  huber(ψ_A(s) − ψ_A(t))``;

``huber`` the smooth L1 loss with δ = 1; ``L = w_D·L_D + w_A·L_A``,
w_D = 25, w_A = 50.

Taken from the authors' code (lenscloth/RKD, ``metric/loss.py``:
``RkdDistance``, ``RKdAngle``, ``metric/utils.py``: ``pdist``): distances
from the Gram matrix, squared distances clamped at 1e-12 before the
square root, the diagonal set to 0; μ the mean of the positive
distances, i.e. of the K(K−1) distinct pairs; the means over all K² pairs
and K³ triplets, the degenerate ones included (an angle with i = j or
k = j is 0 on both sides, i = k gives 1 on both, so they add 0 but count
in the mean); teacher relations without gradient. Ours differ only in
the arithmetic: angles come from the K×K Gram matrix of the centred
embeddings (``⟨t_i − t_j, t_k − t_j⟩ = G_ik − G_ij − G_jk + G_jj``)
instead of the K×K×D difference tensor, so many instances with long
RoI-pooled embeddings stay cheap, and sets with a variable number of
valid items are masks rather than boolean indexing (no host round trip).
With fewer than 2 (distance) or 3 (angle) items the loss is 0; it is
still a product with the student's embeddings, so DDP sees the graph.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..masks import _gt_boxes
from ..registry import MODELS
from ..utils.model_kind import is_segmentor
from ..utils.validation import (check_iterations, check_loss_weight,
                                check_positive)
from .base import DistillTerm
from .response import ground_truth_labels

EMBEDDINGS = ('auto', 'gt_instances', 'class_regions')


def _weights(embeddings: torch.Tensor,
             valid: Optional[torch.Tensor]) -> torch.Tensor:
    if valid is None:
        return embeddings.new_ones(embeddings.shape[0], dtype=torch.float32)
    return valid.float()


def _centred(embeddings: torch.Tensor, weights: torch.Tensor
             ) -> torch.Tensor:
    """The valid embeddings minus their mean (distances and angles do not
    change; the Gram matrix loses less to cancellation); invalid rows 0."""
    e = embeddings.float().flatten(1)
    mean = (e * weights[:, None]).sum(0) / weights.sum().clamp(min=1)
    return (e - mean) * weights[:, None]


def _distances(e: torch.Tensor, eps: float = 1e-12
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The (K, K) Gram matrix and Euclidean distances (0 on the diagonal)
    of (K, D) embeddings."""
    gram = e @ e.t()
    square = gram.diagonal()
    dist = (square[:, None] + square[None, :] - 2 * gram).clamp(min=eps)
    eye = torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return gram, dist.sqrt().masked_fill(eye, 0.0)


def _count(weights: torch.Tensor) -> torch.Tensor:
    return weights.sum().clamp(min=1)


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor,
                      valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RKD's distance-wise loss ``1/K² Σ_ij huber(ψ_D^s − ψ_D^t)``.

    Args:
        student: (M, D_s) student embeddings (trailing dims flattened).
        teacher: (M, D_t) teacher embeddings of the same M items.
        valid: (M,) bool, the items of the set (K of them); ``None``: all.

    Returns:
        torch.Tensor: the float32 loss, 0 when K < 2.
    """
    w = _weights(student, valid)
    eye = torch.eye(w.shape[0], dtype=torch.bool, device=w.device)
    pairs = (w[:, None] * w[None, :]).masked_fill(eye, 0.0)

    def normalised(e: torch.Tensor) -> torch.Tensor:
        _, dist = _distances(_centred(e, w))
        mean = (dist * pairs).sum() / pairs.sum().clamp(min=1)
        return dist / torch.where(mean > 0, mean, torch.ones_like(mean))

    with torch.no_grad():
        target = normalised(teacher.detach())
    error = F.smooth_l1_loss(normalised(student), target, reduction='none')
    return (error * pairs).sum() / _count(w).pow(2)


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor,
                   valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RKD's angle-wise loss ``1/K³ Σ_ijk huber(ψ_A^s − ψ_A^t)``, the
    cosine at the middle item j of every triplet (i, j, k).

    Args:
        student: (M, D_s) student embeddings (trailing dims flattened).
        teacher: (M, D_t) teacher embeddings of the same M items.
        valid: (M,) bool, the items of the set (K of them); ``None``: all.

    Returns:
        torch.Tensor: the float32 loss, 0 when K < 3.
    """
    w = _weights(student, valid)
    eye = torch.eye(w.shape[0], dtype=torch.bool, device=w.device)
    # (j, i, k): the vertex j first; i = j or k = j has no angle
    legs = (w[:, None] * w[None, :]).masked_fill(eye, 0.0)
    triplets = legs[:, :, None] * legs[:, None, :]
    keep = triplets > 0

    def cosines(e: torch.Tensor) -> torch.Tensor:
        gram, dist = _distances(_centred(e, w))
        # <e_i - e_j, e_k - e_j> = G_ik - G_ji - G_jk + G_jj
        dot = gram[None, :, :] - gram[:, :, None] - gram[:, None, :] + \
            gram.diagonal()[:, None, None]
        norms = dist[:, :, None] * dist[:, None, :]
        return torch.where(keep, dot / torch.where(
            keep, norms, torch.ones_like(norms)).clamp(min=1e-12),
            torch.zeros_like(dot))

    with torch.no_grad():
        target = cosines(teacher.detach())
    error = F.smooth_l1_loss(cosines(student), target, reduction='none')
    return (error * triplets).sum() / _count(w).pow(3)


def gt_instance_rois(data_samples: Sequence[BaseDataElement],
                     like: torch.Tensor) -> torch.Tensor:
    """(K, 5) RoIs ``(image index, x1, y1, x2, y2)`` of every ground-truth
    box of the batch, float32 on ``like``'s device."""
    rois = []
    for i, sample in enumerate(data_samples):
        boxes = _gt_boxes(sample).to(like.device, torch.float32)
        boxes = boxes.reshape(-1, 4)
        rois.append(torch.cat([boxes.new_full((boxes.shape[0], 1), i),
                               boxes], dim=1))
    return torch.cat(rois) if rois else like.new_zeros((0, 5))


def roi_levels(rois: torch.Tensor, log2_strides: torch.Tensor,
               finest_scale: float = 56.0) -> torch.Tensor:
    """The level each RoI is pooled from: mmdet's ``SingleRoIExtractor``
    rule in strides. A box of scale ``sqrt(w·h)`` in ``[56·2^k,
    56·2^(k+1))`` goes to stride ``4·2^k`` (mmdet maps it to level k of
    FPN P2-P5), i.e. the level whose stride is nearest, clamped to those
    read.

    Args:
        rois: (K, 5) RoIs.
        log2_strides: (L,) log2 of each level's stride.
        finest_scale: 56, as mmdet.

    Returns:
        torch.Tensor: (K,) long level indices.
    """
    scale = ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).clamp(
        min=0).sqrt()
    target = torch.floor(torch.log2(scale / finest_scale + 1e-6)) + 2
    return (log2_strides[None, :] - target[:, None]).abs().argmin(dim=1)


def roi_embeddings(levels: Sequence[torch.Tensor], rois: torch.Tensor,
                   input_shape: Tuple[int, int], roi_size: int = 7,
                   sampling_ratio: int = 0, finest_scale: float = 56.0,
                   level: Optional[int] = None) -> torch.Tensor:
    """One embedding per RoI: RoIAlign (mmcv, ``aligned=True``) of its
    level, flattened to ``C·roi_size²``.

    Every level is pooled for every RoI and the RoI's own level selected
    by a one-hot product, so the step has no data-dependent indexing.

    Args:
        levels: (N, C, H_l, W_l) maps, one per level (same C).
        rois: (K, 5) RoIs in the batch input's coordinates.
        input_shape: (H, W) of the batch input.
        roi_size: the pooled size. 7 as mmdet's RoI heads.
        sampling_ratio: RoIAlign's; 0 (adaptive) as mmdet.
        finest_scale: of :func:`roi_levels`.
        level: pool every RoI from this level; ``None``: by box size.

    Returns:
        torch.Tensor: (K, C·roi_size²) float32.
    """
    from mmcv.ops import roi_align
    if level is not None:
        levels = [levels[level]]
    pooled = [roi_align(x.float(), rois, (roi_size, roi_size),
                        x.shape[-2] / input_shape[0], sampling_ratio, 'avg',
                        True).flatten(1) for x in levels]
    if len(pooled) == 1:
        return pooled[0]
    log2_strides = rois.new_tensor(
        [round(math.log2(input_shape[0] / x.shape[-2])) for x in levels])
    chosen = F.one_hot(roi_levels(rois, log2_strides, finest_scale),
                       len(levels)).float()  # (K, L)
    return torch.einsum('kl,lkd->kd', chosen, torch.stack(pooled))


def class_region_embeddings(feature: torch.Tensor, labels: torch.Tensor,
                            num_classes: int
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The mean feature of each class present in each image's label map.

    Args:
        feature: (N, C, H, W) map.
        labels: (N, H', W') long label maps (ignored labels, e.g. 255,
            belong to no class), resized (nearest) to H×W.
        num_classes: the classes.

    Returns:
        tuple: (N·num_classes, C) float32 embeddings, image-major, and
        the (N·num_classes,) bool mask of the regions present.
    """
    n, c, h, w = feature.shape
    if tuple(labels.shape[-2:]) != (h, w):
        labels = F.interpolate(labels[:, None].float(), size=(h, w),
                               mode='nearest')[:, 0].long()
    classes = torch.arange(num_classes, device=labels.device)
    regions = (labels[:, None] == classes[None, :, None, None]).float()
    area = regions.sum(dim=(2, 3))  # (N, classes)
    with torch.autocast(feature.device.type, enabled=False):
        total = torch.einsum('nkhw,nchw->nkc', regions, feature.float())
    mean = total / area.clamp(min=1)[..., None]
    return mean.reshape(n * num_classes, c), (area > 0).reshape(-1)


@MODELS.register_module()
class RelationalKD(DistillTerm):
    """RKD: distance-wise and angle-wise relations between the embeddings
    of a set of items (Park et al., CVPR 2019).

    The loss ``w_D·L_D + w_A·L_A`` (Huber losses of mean-normalised
    distances and of angles; see :mod:`mmkd.losses.relational`) over one
    set per batch:

    - detectors (``embeddings='gt_instances'``): the batch's ground-truth
      instances, all images together, so one image's instances relate to
      each other and to the other images'. Each is RoIAlign-pooled
      (``roi_size``², mmcv, ``aligned=True``) from the level read (e.g.
      ``'neck'``) whose stride suits its size (mmdet's
      ``SingleRoIExtractor`` rule, ``finest_scale`` 56, the nearest level
      read) or from one configured ``level``, and flattened to ``C ·
      roi_size²``; each side pools from its own maps.
    - segmentors (``embeddings='class_regions'``): the classes present in
      each image's label map (nearest-resized to the map), each
      embedded as the mean feature of its region; one set over the
      batch's (image, class) regions present on both sides. Several
      levels read give one loss each, summed.

    Student and teacher embeddings may differ in dimension: no adaptor.
    The paper's weights w_D = 25, w_A = 50 (its classification and
    few-shot settings) are the defaults; ``loss_weight`` scales both.

    Args:
        student: student module path (e.g. ``'neck'``,
            ``'decode_head.bottleneck'``).
        teacher: teacher module path.
        distance_weight: w_D. Default 25.
        angle_weight: w_A. Default 50.
        embeddings: ``'auto'`` (default: ``'gt_instances'`` for a
            detector, ``'class_regions'`` for a segmentor),
            ``'gt_instances'`` or ``'class_regions'``.
        roi_size: RoIAlign output size. Default 7 (mmdet's RoI heads).
        sampling_ratio: RoIAlign sampling ratio. Default 0 (adaptive).
        finest_scale: box scale of the finest stride-4 level. Default 56.
        level: pool every instance from this level of the record;
            ``None`` (default) chooses by box size.
        num_classes: classes of the label maps; ``None`` (default): the
            student's ``decode_head.num_classes``.
        loss_weight: multiplier.
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> # detection: the gt instances RoI-pooled from the FPN
        >>> distill = dict(rkd=dict(
        ...     type='RelationalKD', student='neck', teacher='neck',
        ...     distance_weight=25.0, angle_weight=50.0))
        >>> # segmentation: the class regions of the head's features
        >>> distill = dict(rkd=dict(
        ...     type='RelationalKD', student='decode_head.bottleneck',
        ...     teacher='decode_head.bottleneck'))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 distance_weight: float = 25.0,
                 angle_weight: float = 50.0,
                 embeddings: str = 'auto',
                 roi_size: int = 7,
                 sampling_ratio: int = 0,
                 finest_scale: float = 56.0,
                 level: Optional[int] = None,
                 num_classes: Optional[int] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, loss_weight, warmup_iters)
        self.distance_weight = check_loss_weight(distance_weight,
                                                 'distance_weight')
        self.angle_weight = check_loss_weight(angle_weight, 'angle_weight')
        if self.distance_weight == 0 and self.angle_weight == 0:
            raise ValueError('distance_weight and angle_weight are both 0: '
                             'the term would compute nothing.')
        if embeddings not in EMBEDDINGS:
            raise ValueError(f'embeddings must be one of {EMBEDDINGS}, got '
                             f'{embeddings!r}.')
        self.embeddings = embeddings
        self.roi_size = check_iterations(roi_size, 'roi_size')
        if self.roi_size < 1:
            raise ValueError(f'roi_size must be >= 1, got {roi_size!r}.')
        self.sampling_ratio = check_iterations(sampling_ratio,
                                               'sampling_ratio')
        self.finest_scale = check_positive(finest_scale, 'finest_scale')
        self.level = None if level is None else check_iterations(
            level, 'level')
        self.num_classes = None
        if num_classes is not None:
            self.num_classes = check_iterations(num_classes, 'num_classes')
            if self.num_classes < 1:
                raise ValueError(f'num_classes must be >= 1, got '
                                 f'{num_classes!r}.')

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        segmentor = student_model is not None and is_segmentor(student_model)
        if self.embeddings == 'auto':
            self.embeddings = 'class_regions' if segmentor else \
                'gt_instances'
        elif self.embeddings == 'gt_instances' and segmentor:
            raise ValueError(
                f'Term {self.name!r}: embeddings="gt_instances" pools '
                'ground-truth boxes, but the student '
                f'{type(student_model).__name__} is an mmseg segmentor; '
                'use "class_regions".')
        for side, levels in (('student', student_levels),
                             ('teacher', teacher_levels)):
            for i, x in enumerate(levels):
                if x.dim() != 4:
                    raise ValueError(
                        f'Term {self.name!r}: RKD pools (N, C, H, W) maps; '
                        f'{side} level {i} is {tuple(x.shape)}.')
            if self.embeddings == 'gt_instances':
                if self.level is not None and self.level >= len(levels):
                    raise ValueError(
                        f'Term {self.name!r}: level={self.level} but the '
                        f'{side} record has {len(levels)} level(s).')
                if self.level is None and \
                        len({x.shape[1] for x in levels}) > 1:
                    raise ValueError(
                        f'Term {self.name!r}: the {side} levels have '
                        f'channels {[x.shape[1] for x in levels]}; an '
                        'instance embedding takes one level, so they must '
                        'agree (read the neck) or set level=.')
        if self.embeddings == 'class_regions':
            self.check_level_count(student_levels, teacher_levels)
            if self.num_classes is None:
                head = getattr(student_model, 'decode_head', None)
                classes = getattr(head, 'num_classes', None)
                if not isinstance(classes, int):
                    raise ValueError(
                        f'Term {self.name!r}: class-region embeddings need '
                        'the number of classes; set num_classes=.')
                self.num_classes = classes

    def relation_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                      valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``w_D·L_D + w_A·L_A`` of two sets of embeddings."""
        loss = student.new_zeros((), dtype=torch.float32)
        if self.distance_weight:
            loss = loss + self.distance_weight * rkd_distance_loss(
                student, teacher, valid)
        if self.angle_weight:
            loss = loss + self.angle_weight * rkd_angle_loss(
                student, teacher, valid)
        return loss

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        with torch.autocast(student_levels[0].device.type, enabled=False):
            if self.embeddings == 'class_regions':
                return self._class_regions(student_levels, teacher_levels,
                                           data_samples)
            return self._gt_instances(student_levels, teacher_levels,
                                      data_samples)

    def _gt_instances(self, student_levels: List[torch.Tensor],
                      teacher_levels: List[torch.Tensor],
                      data_samples: Sequence[BaseDataElement]
                      ) -> torch.Tensor:
        rois = gt_instance_rois(data_samples, student_levels[0])
        if rois.shape[0] == 0:  # no instance: 0, still connected
            return sum(x.float().sum() for x in student_levels) * 0.0
        shape = tuple(data_samples[0].metainfo['batch_input_shape'])
        options = dict(roi_size=self.roi_size,
                       sampling_ratio=self.sampling_ratio,
                       finest_scale=self.finest_scale, level=self.level)
        student = roi_embeddings(student_levels, rois, shape, **options)
        teacher = roi_embeddings([x.detach() for x in teacher_levels],
                                 rois, shape, **options)
        return self.relation_loss(student, teacher)

    def _class_regions(self, student_levels: List[torch.Tensor],
                       teacher_levels: List[torch.Tensor],
                       data_samples: Sequence[BaseDataElement]
                       ) -> torch.Tensor:
        labels = ground_truth_labels(
            data_samples, self.name,
            reason="embeddings='class_regions' pools each class's region",
            fix="use embeddings='gt_instances' on a detector").to(
                student_levels[0].device)
        total = student_levels[0].new_zeros((), dtype=torch.float32)
        for s, t in zip(student_levels, teacher_levels):
            s_emb, s_valid = class_region_embeddings(s, labels,
                                                     self.num_classes)
            t_emb, t_valid = class_region_embeddings(t.detach(), labels,
                                                     self.num_classes)
            total = total + self.relation_loss(s_emb, t_emb,
                                               s_valid & t_valid)
        return total
