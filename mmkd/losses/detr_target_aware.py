"""DETRDistill's target-aware feature distillation."""
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..heads.query_views import image_factors, query_family
from ..masks import _gt_boxes
from ..recorders import MethodCalls
from ..registry import MODELS
from ..slots import ModelSlot
from ..utils.validation import check_fraction
from .aligned import AlignedFeatureTerm
from .base import as_levels, as_method_calls
from .detr_matching import teacher_probabilities

TeacherLayers = Union[str, Sequence[int]]


def select_target_queries(cls_logits: Tensor, boxes: Tensor,
                          gt_boxes: Sequence[Tensor], factors: Tensor,
                          topk: int, use_sigmoid: bool
                          ) -> Tuple[Tensor, Tensor]:
    """The teacher queries that carry the objects, and how much each does.

    As the detector's own post-processing ranks them: the ``topk`` highest
    (query, class) scores of each image (a query may come twice, once per
    class). Each score is multiplied by the IoU of the query's box with
    its best-overlapping ground-truth box (the score alone for an image
    without boxes), so a confident query on no object weighs little.

    Args:
        cls_logits: ``(B, Q, C)`` one decoder layer's class logits.
        boxes: ``(B, Q, 4)`` its normalised ``(cx, cy, w, h)`` boxes.
        gt_boxes: per image, ``(G_b, 4)`` pixel ``(x1, y1, x2, y2)``.
        factors: ``(B, 4)`` each image's ``(w, h, w, h)``.
        topk: how many (query, class) scores an image keeps; at most
            ``Q · C`` are kept.
        use_sigmoid: per-class sigmoid scores, else a softmax whose last
            channel (the background) is left out.

    Returns:
        ``(indices, scores)``: ``(B, K)`` query indices and their
        ``(B, K)`` weights, ``K = min(topk, Q · C)``.
    """
    probs = teacher_probabilities(cls_logits, use_sigmoid)
    if not use_sigmoid:
        probs = probs[..., :-1]  # the background channel
    num_classes = probs.shape[-1]
    values, flat = probs.flatten(1).topk(min(topk, probs[0].numel()), dim=1)
    indices = torch.div(flat, num_classes, rounding_mode='floor')
    scores = []
    for b, gt in enumerate(gt_boxes):
        if gt.numel() == 0:
            scores.append(values[b])
            continue
        picked = bbox_cxcywh_to_xyxy(boxes[b, indices[b]]) * factors[b]
        best_iou = bbox_overlaps(picked, gt.to(picked)).max(-1).values
        scores.append(values[b] * best_iou)
    return indices, torch.stack(scores)


def target_aware_mask(queries: Tensor, scores: Tensor,
                      feature: Tensor, floor: float = 1e-2) -> Tensor:
    """The imitation mask of one feature level from the teacher's queries.

    ``M(x, y) = Σ_k s_k · cos(q_k, F(x, y))``, floored at ``floor``, then
    divided by its maximum over the image, so the most object-like
    location weighs 1 and none weighs less than ``floor / max``.

    Args:
        queries: ``(B, K, D)`` the selected teacher queries' embeddings.
        scores: ``(B, K)`` their weights.
        feature: ``(B, D, H, W)`` the teacher's feature map.
        floor: the least a location's summed similarity counts.

    Returns:
        ``(B, 1, H, W)`` in float32.
    """
    # Σ_k s_k cos(q_k, F) = F̂ · Σ_k s_k q̂_k: one (B, D) direction a map
    direction = torch.einsum('bkd,bk->bd',
                             F.normalize(queries.float(), dim=-1),
                             scores.float())
    mask = torch.einsum('bd,bdhw->bhw', direction,
                        F.normalize(feature.float(), dim=1)).clamp(min=floor)
    return (mask / mask.flatten(1).amax(1)[:, None, None]).unsqueeze(1)


@dataclass
class TeacherTransformer:
    """What the teacher's ``forward_transformer`` call gives the term.

    Attributes:
        features: the neck levels the transformer read, ``(B, D, H, W)``.
        hidden_states: ``(L, B, Q, D)`` the decoder layers' queries.
        cls_logits: ``(L, B, Q, C)``; boxes: ``(L, B, Q, 4)`` normalised.
        use_sigmoid: how its head scores classes.
        head: the teacher's head module.
    """
    features: List[Tensor]
    hidden_states: Tensor
    cls_logits: Tensor
    boxes: Tensor
    use_sigmoid: bool
    head: nn.Module = field(repr=False)


def teacher_transformer(calls: MethodCalls, head_path: str,
                        where: str) -> TeacherTransformer:
    """Read the teacher detector's ``forward_transformer`` call (the neck
    maps it read, the decoder queries it gave) and its head's
    ``forward`` call on those queries (their class logits and boxes)."""
    call = calls.last('forward_transformer')
    head_call = calls.last(f'{head_path}.forward')
    features = as_levels(call.args[0] if call.args else
                         call.kwargs['img_feats'], 'teacher', where)
    cls_logits, boxes = head_call.result[:2]
    head = head_call.owner
    return TeacherTransformer(
        features=[f.detach() for f in features],
        hidden_states=call.result['hidden_states'].detach(),
        cls_logits=cls_logits.detach(), boxes=boxes.detach(),
        use_sigmoid=bool(head.loss_cls.use_sigmoid), head=head)


@MODELS.register_module()
class TargetAwareFeatureKD(AlignedFeatureTerm):
    """Target-aware feature distillation (DETRDistill, Chang et al., ICCV
    2023).

    Feature imitation where the teacher's own object queries say which
    locations matter. For each teacher decoder layer, the ``topk``
    highest (query, class) scores are kept, each weighted by its box's
    best IoU with the ground truth
    (:func:`select_target_queries`); each level's mask is the
    score-weighted sum of those queries' cosine similarities with the
    teacher's feature at every location, floored at 0.01 and divided by
    its image maximum (:func:`target_aware_mask`). The loss is the mean
    squared error between the masked teacher map and the masked (adapted)
    student map, ``mean (M·F_t − M·A(F_s))²`` over batch, channels and
    locations, summed over levels and over the teacher's decoder layers.

    This is the form of the authors' released code (their
    ``Distiller.forward_train``: cosine similarity, no softmax, top 100
    queries by class score times IoU, every decoder layer, weight 1, no
    adaptor for their 256-wide necks). The FGD neck term their config
    also defines is not called by that code.

    It reads the student's neck maps (``student``, default ``'neck'``),
    the teacher detector's ``forward_transformer`` call (the neck maps
    its transformer read, the decoder queries it gave) and the teacher
    head's ``forward`` call on those queries (their class logits and
    boxes): what the teacher computes anyway. Any DETR-family teacher
    (DETR, Deformable DETR, Conditional DETR, DAB-DETR, DINO),
    whose neck width equals its queries' (true of mmdet's configs); the
    student may be any detector whose ``student`` module gives as many
    maps (each adapted to the teacher's width and resized to its H×W), so
    a CNN student learns from a DETR teacher the same way.

    Args:
        student: the student's feature maps. Default ``'neck'``.
        teacher_head: the teacher's DETR head path. Default
            ``'bbox_head'``.
        topk: (query, class) scores kept per image and layer. Default 100
            (mmdet's and the authors' ``max_per_img``).
        teacher_layers: ``'all'`` (default, as the authors: each decoder
            layer gives a mask and the losses are summed), ``'last'``, or
            a list of teacher decoder layer indices.
        floor: the least a location's summed similarity counts before the
            mask is normalised. Default 0.01.
        adaptor: student-side adaptor config, or ``None`` when the widths
            match. Default a 1×1 ``ConvAdaptor``.
        loss_weight: multiplier. Default 1.0.
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(
        ...     feat=dict(type='TargetAwareFeatureKD', student='neck'),
        ...     match=dict(type='HungarianMatchingKD'))
    """

    #: the mask is built from one teacher's own queries
    teacher_ensembles = False

    def __init__(self,
                 student: str = 'neck',
                 teacher_head: str = 'bbox_head',
                 topk: int = 100,
                 teacher_layers: TeacherLayers = 'all',
                 floor: float = 1e-2,
                 adaptor: Optional[dict] = dict(type='ConvAdaptor'),
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        if not isinstance(teacher_head, str) or not teacher_head:
            raise TypeError('teacher_head is the teacher\'s DETR head path, '
                            f'e.g. "bbox_head"; got {teacher_head!r}.')
        if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
            raise ValueError(f'topk is a positive int; got {topk!r}.')
        if not (teacher_layers in ('all', 'last') or (
                isinstance(teacher_layers, (list, tuple)) and teacher_layers
                and all(isinstance(i, int) for i in teacher_layers))):
            raise TypeError(
                'teacher_layers is "all", "last" or a list of teacher '
                f'decoder layer indices; got {teacher_layers!r}.')
        super().__init__(
            student=student,
            teacher=dict(path='', record='calls',
                         methods=('forward_transformer',
                                  f'{teacher_head}.forward')),
            adaptor=adaptor, loss_weight=loss_weight,
            warmup_iters=warmup_iters)
        self.teacher_head = teacher_head
        self.topk = topk
        self.teacher_layers = teacher_layers
        self.floor = check_fraction(floor, 'floor')
        if self.floor == 0:
            raise ValueError('floor must be > 0: the mask is divided by its '
                             'maximum, which a floor of 0 lets be 0.')
        self.layer_indices: List[int] = []

    def bind_models(self, student: nn.Module,
                    teachers: Sequence[ModelSlot]) -> None:
        """Refuse a teacher without decoder queries, or without the head
        ``teacher_head`` names, before anything is recorded."""
        for slot in teachers:
            teacher = slot.module
            if not callable(getattr(teacher, 'forward_transformer', None)):
                raise TypeError(
                    f'Term {self.name!r}: the teacher is a '
                    f'{type(teacher).__name__}, which has no '
                    'forward_transformer(): TargetAwareFeatureKD builds its '
                    'mask from a DETR-family teacher\'s decoder queries '
                    '(DETR, Deformable DETR, Conditional DETR, DAB-DETR, '
                    'DINO). Distil a CNN teacher\'s neck with '
                    'FeatureImitation or FocalGlobalKD instead.')
            if self.teacher_head not in dict(teacher.named_modules()):
                raise ValueError(
                    f'Term {self.name!r}: the teacher '
                    f'{type(teacher).__name__} has no module '
                    f'{self.teacher_head!r}; set teacher_head to its DETR '
                    'head\'s path.')

    def parse_record(self, value: Any, side: str) -> Any:
        if side == 'student':
            return as_levels(value, side, self.name)
        calls = as_method_calls(value, side, self.name)
        if not calls.get('forward_transformer') or \
                not calls.get(f'{self.teacher_head}.forward'):
            raise TypeError(
                f'Term {self.name!r}: the teacher did not call '
                'forward_transformer(); TargetAwareFeatureKD reads a '
                'DETR-family teacher (DETR, Deformable DETR, Conditional '
                'DETR, DAB-DETR, DINO). Distil a CNN teacher with '
                'FeatureImitation or FGD on its neck instead.')
        return teacher_transformer(calls, self.teacher_head,
                                   f'{self.name} (teacher)')

    def setup(self, student_levels: List[Tensor],
              teacher: TeacherTransformer, student_model: nn.Module) -> None:
        query_family(teacher.head, f'Term {self.name!r}: the teacher head '
                     f'{self.teacher_head!r}')
        super().setup(student_levels, teacher.features, student_model)
        width = teacher.hidden_states.shape[-1]
        for level, feature in enumerate(teacher.features):
            if feature.shape[1] != width:
                raise ValueError(
                    f'Term {self.name!r}: the teacher\'s neck level {level} '
                    f'has {feature.shape[1]} channels but its decoder '
                    f'queries are {width} wide; the mask compares the two '
                    '(a DETR\'s neck maps to its transformer width).')
        self.layer_indices = self.resolve_layers(
            teacher.hidden_states.shape[0])

    def resolve_layers(self, depth: int) -> List[int]:
        """The teacher decoder layers (non-negative indices) whose masks
        the loss sums, for a decoder of ``depth`` layers."""
        if self.teacher_layers == 'all':
            return list(range(depth))
        if self.teacher_layers == 'last':
            return [depth - 1]
        bad = [i for i in self.teacher_layers if not -depth <= i < depth]
        if bad:
            raise ValueError(
                f'Term {self.name!r}: teacher_layers {bad} are out of range '
                f'for a teacher decoder of {depth} layers.')
        return [i % depth for i in self.teacher_layers]

    def layer_masks(self, teacher: TeacherTransformer,
                    data_samples: Sequence[BaseDataElement]
                    ) -> List[List[Tensor]]:
        """Per selected teacher layer, one ``(B, 1, H, W)`` mask a level
        (:func:`target_aware_mask`)."""
        gt_boxes = [_gt_boxes(s) for s in data_samples]
        factors = image_factors([s.metainfo for s in data_samples],
                                teacher.boxes)
        masks = []
        for layer in self.layer_indices:
            indices, scores = select_target_queries(
                teacher.cls_logits[layer].float(),
                teacher.boxes[layer].float(), gt_boxes, factors.float(),
                self.topk, teacher.use_sigmoid)
            hidden = teacher.hidden_states[layer]
            queries = torch.stack([hidden[b, indices[b]]
                                   for b in range(hidden.shape[0])])
            masks.append([target_aware_mask(queries, scores, f, self.floor)
                          for f in teacher.features])
        return masks

    def location_weights(self, teacher: TeacherTransformer,
                         data_samples: Sequence[BaseDataElement]
                         ) -> List[Tensor]:
        """The weight each location's squared error gets, one
        ``(B, 1, H, W)`` map a level: ``Σ_layers M²``, since
        ``(M·s − M·t)² = M²·(s − t)²`` (what ``tools/feature_maps.py``
        draws)."""
        per_layer = self.layer_masks(teacher, data_samples)
        return [sum(masks[level].pow(2) for masks in per_layer)
                for level in range(len(teacher.features))]

    def compute(self, student_levels: List[Tensor],
                teacher: TeacherTransformer,
                data_samples: Sequence[BaseDataElement]) -> Tensor:
        """``Σ_levels mean(W·(A(s) − t)²)`` with ``W = Σ_layers M²``: the
        masked MSE of every layer, summed, in one pass over each map."""
        student_levels = self.align(student_levels, teacher.features)
        loss = student_levels[0].new_zeros((), dtype=torch.float32)
        for weight, s, t in zip(self.location_weights(teacher, data_samples),
                                student_levels, teacher.features):
            loss = loss + (weight * (s.float() - t.float()).pow(2)).mean()
        return loss
