"""Query-head views: what DETR-family distillation terms read.

The DETR-family sibling of the dense-head views (:mod:`.views`). A DETR
head predicts, per decoder layer, a class vector and a normalised
``(cx, cy, w, h)`` box for each query; queries are a set, so a student's
and a teacher's are compared through a matching, not position by
position. The view reads two method-call records
(:class:`~mmkd.recorders.MethodCalls`):

- the student head's ``forward`` and ``get_targets`` calls in its own
  loss: ``loss_by_feat_single`` calls ``get_targets`` once per decoder
  layer (then once more for the encoder proposals of a two-stage
  Deformable DETR or DINO, which the view leaves out). The predictions
  a ``get_targets`` call receives are the layer's *matching* queries, so
  DINO's denoising queries (split off before the call) are excluded; its
  result is the student's own Hungarian assignment of that step (labels,
  box targets, weights), never computed a second time;
- the teacher head's ``forward`` call: in tensor mode (eval, no loss) a
  head returns ``(all_layers_cls_scores, all_layers_bbox_preds)``, each
  ``(num_layers, batch, num_queries, ...)``; an eval-mode DINO has no
  denoising queries.

Families: DETR, Deformable DETR (plain, box refine and two-stage),
Conditional DETR, DAB-DETR and DINO (``type(head).forward`` and
``get_targets`` must be the family's, so heads that change either, e.g.
DDQ-DETR's, are refused). The student and the teacher may be of
different families and decoder depths (see :func:`resolve_layer_pairs`);
they must classify into the same classes the same way (sigmoid or
softmax).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.dense_heads import (ConditionalDETRHead, DABDETRHead,
                                      DeformableDETRHead, DETRHead, DINOHead)
from torch import Tensor

from ..recorders import MethodCalls
from .views import bind_call

STUDENT_METHODS = ('forward', 'get_targets')
TEACHER_METHODS = ('forward', )

#: (family name, head class), most derived first
QUERY_FAMILIES: Tuple[Tuple[str, type], ...] = (
    ('DINO', DINOHead),
    ('DAB-DETR', DABDETRHead),
    ('Conditional DETR', ConditionalDETRHead),
    ('Deformable DETR', DeformableDETRHead),
    ('DETR', DETRHead),
)

LayerPairs = Union[None, str, Sequence[Tuple[int, int]]]


def known_query_families() -> List[str]:
    return [f'{name} ({cls.__name__})' for name, cls in QUERY_FAMILIES]


def query_family(head: nn.Module, where: str) -> str:
    """The DETR family of ``head``; a TypeError listing the known ones.

    Args:
        head: the module at the head path.
        where: e.g. ``"Term 'match': the student head"``, for the message.
    """
    for name, cls in QUERY_FAMILIES:
        if isinstance(head, cls):
            if type(head).forward is cls.forward and \
                    type(head).get_targets is DETRHead.get_targets:
                return name
            break
    raise TypeError(
        f'{where} is a {type(head).__name__}, which no query-head view '
        f'supports: DETR-family terms read {", ".join(known_query_families())}'
        ' and subclasses that keep their forward() and get_targets().')


def resolve_layer_pairs(layers: LayerPairs, student_layers: int,
                        teacher_layers: int,
                        where: str) -> List[Tuple[int, int]]:
    """Which student decoder layer learns from which teacher layer.

    Args:
        layers: ``None`` (default): the layers aligned from the last one
            (student layer ``L_s - 1 - k`` with teacher layer
            ``L_t - 1 - k`` for ``k < min(L_s, L_t)``; layer by layer, as
            DETRDistill does, when the depths are equal); ``'last'``: the
            last layers only; or explicit ``(student, teacher)`` index
            pairs (negative indices count from the last layer).
        student_layers: the student's decoder depth.
        teacher_layers: the teacher's.
        where: the term, for the message.

    Returns:
        Non-negative ``(student, teacher)`` pairs.
    """
    if layers is None:
        depth = min(student_layers, teacher_layers)
        return [(student_layers - depth + k, teacher_layers - depth + k)
                for k in range(depth)]
    if layers == 'last':
        return [(student_layers - 1, teacher_layers - 1)]
    pairs = []
    try:
        raw = [(int(s), int(t)) for s, t in layers]
    except (TypeError, ValueError) as err:
        raise TypeError(
            f'{where}: layers is None, "last" or a list of (student, '
            f'teacher) decoder layer indices; got {layers!r}.') from err
    for s, t in raw:
        if not (-student_layers <= s < student_layers
                and -teacher_layers <= t < teacher_layers):
            raise ValueError(
                f'{where}: layer pair ({s}, {t}) is out of range: the '
                f'student decoder has {student_layers} layer(s), the '
                f'teacher\'s {teacher_layers}.')
        pairs.append((s % student_layers, t % teacher_layers))
    if not pairs:
        raise ValueError(f'{where}: layers names no (student, teacher) '
                         'pair.')
    return pairs


@dataclass
class QueryLayer:
    """One student decoder layer and the teacher layer it learns from.

    Shapes: ``B`` images, ``Q`` student (matching) queries, ``T`` teacher
    queries, ``C`` class channels (``num_classes``, or ``+ 1`` for the
    background of a softmax head). Boxes are normalised
    ``(cx, cy, w, h)``; the teacher's are detached.

    Attributes:
        student_layer, teacher_layer: the decoder layer indices.
        cls_student: ``(B, Q, C)`` logits; box_student: ``(B, Q, 4)``.
        cls_teacher: ``(B, T, C)``; box_teacher: ``(B, T, 4)``.
        labels: ``(B, Q)`` the student's own assignment of the step
            (``num_classes`` for unmatched queries); label_weights
            ``(B, Q)``; bbox_targets, bbox_weights: ``(B, Q, 4)``.
        num_pos: the number of matched student queries (an int, as
            ``get_targets`` returns it).
    """
    student_layer: int
    teacher_layer: int
    cls_student: Tensor
    box_student: Tensor
    cls_teacher: Tensor
    box_teacher: Tensor
    labels: Tensor
    label_weights: Tensor
    bbox_targets: Tensor
    bbox_weights: Tensor
    num_pos: int


@dataclass
class QueryPredictions:
    """Both models' per-layer query predictions and the student's
    assignment, collected once a step for every term that reads them.

    Attributes:
        layers: one :class:`QueryLayer` per mapped layer pair.
        factors: ``(B, 4)`` ``(w, h, w, h)`` of each image, to scale the
            normalised boxes to pixels (as the head's GIoU loss does).
        num_classes: the classes (background excluded).
        use_sigmoid: per-class sigmoid scores (else a softmax whose last
            channel is the background).
        family: the student head's family, e.g. ``'DINO'``.
        gt_instances, img_metas: what the student's loss was given.
        student_head, teacher_head: the two head modules.
    """
    layers: List[QueryLayer]
    factors: Tensor
    num_classes: int
    use_sigmoid: bool
    family: str
    gt_instances: list = field(default_factory=list)
    img_metas: list = field(default_factory=list)
    student_head: Optional[nn.Module] = field(default=None, repr=False)
    teacher_head: Optional[nn.Module] = field(default=None, repr=False)


def image_factors(metas: Sequence[dict], like: Tensor) -> Tensor:
    """``(B, 4)`` each image's ``(w, h, w, h)`` from its ``img_shape``,
    which scales normalised DETR boxes to pixels (as the head's GIoU
    loss does), in ``like``'s dtype and device."""
    return like.new_tensor([[m['img_shape'][1], m['img_shape'][0]] * 2
                            for m in metas])


def decoder_depth(forward_result: Any) -> int:
    """The number of decoder layers in a head's forward result."""
    return int(forward_result[0].shape[0])


def collect_query_predictions(student: MethodCalls, teacher: MethodCalls,
                              pairs: Sequence[Tuple[int, int]],
                              family: str) -> QueryPredictions:
    """Gather :class:`QueryPredictions` from the two heads' records.

    Args:
        student: the student head's ``forward`` and ``get_targets`` calls.
        teacher: the teacher head's ``forward`` call.
        pairs: ``(student layer, teacher layer)`` pairs.
        family: the student head's family.
    """
    forward = student.last('forward')
    head = forward.owner
    t_forward = teacher.last('forward')
    t_cls, t_box = t_forward.result[:2]
    depth = decoder_depth(forward.result)
    calls = student.get('get_targets', [])
    if len(calls) < depth:
        raise RuntimeError(
            f'The student {type(head).__name__} called get_targets() '
            f'{len(calls)} time(s) in its loss for {depth} decoder layers; '
            'a query-head view reads one call a layer.')
    layers = []
    dtype = forward.result[0].dtype
    for s, t in pairs:
        call = calls[s]  # decoder layers first, then encoder proposals
        args = bind_call(call)
        labels, label_weights, bbox_targets, bbox_weights, num_pos, _ = \
            call.result
        layers.append(QueryLayer(
            student_layer=s, teacher_layer=t,
            cls_student=torch.stack(list(args['cls_scores_list'])),
            box_student=torch.stack(list(args['bbox_preds_list'])),
            cls_teacher=t_cls[t].detach().to(dtype),
            box_teacher=t_box[t].detach().to(dtype),
            labels=torch.stack(list(labels)),
            label_weights=torch.stack(list(label_weights)),
            bbox_targets=torch.stack(list(bbox_targets)),
            bbox_weights=torch.stack(list(bbox_weights)),
            num_pos=int(num_pos)))
    first = bind_call(calls[0])
    metas = list(first['batch_img_metas'])
    factors = image_factors(metas, layers[0].box_student)
    return QueryPredictions(
        layers=layers, factors=factors, num_classes=head.num_classes,
        use_sigmoid=bool(head.loss_cls.use_sigmoid), family=family,
        gt_instances=list(first['batch_gt_instances']), img_metas=metas,
        student_head=head, teacher_head=t_forward.owner)


def check_query_heads(student_head: nn.Module, teacher_head: nn.Module,
                      term: str) -> Dict[str, str]:
    """The two heads' families, once they can be compared query by query.

    Raises:
        TypeError: a head is of no known family.
        ValueError: the heads predict other classes, or score them
            differently (sigmoid against softmax).
    """
    families = dict(
        student=query_family(student_head, f'Term {term!r}: the student '
                             'head'),
        teacher=query_family(teacher_head, f'Term {term!r}: the teacher '
                             'head'))
    if student_head.num_classes != teacher_head.num_classes:
        raise ValueError(
            f'Term {term!r}: the teacher head predicts '
            f'{teacher_head.num_classes} classes, the student head '
            f'{student_head.num_classes}; query-level KD compares class '
            'scores channel by channel. Use a teacher trained on the '
            "student's classes (or distil features only).")
    s_sig = bool(student_head.loss_cls.use_sigmoid)
    t_sig = bool(teacher_head.loss_cls.use_sigmoid)
    if s_sig != t_sig:
        kind = {True: 'per-class sigmoid', False: 'softmax with background'}
        raise ValueError(
            f'Term {term!r}: the student head scores classes with a '
            f'{kind[s_sig]}, the teacher head with a {kind[t_sig]}; their '
            'class outputs are not comparable. Pair heads whose loss_cls '
            'has the same use_sigmoid.')
    return families
