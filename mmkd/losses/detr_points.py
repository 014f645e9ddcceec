"""KD-DETR's consistent distillation points (Wang et al., CVPR 2024)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..heads.query_points import (decode_points, own_query_boxes,
                                  require_box_queries)
from ..recorders import MethodCalls
from ..registry import MODELS
from ..utils.validation import check_loss_weight
from .detr_decoder_term import DecoderQueryTerm
from .detr_matching import teacher_confidence, teacher_probabilities

STUDENT_LAYERS = ('all', 'last')


def uniform_boxes(batch: int, number: int, size_range: Tuple[float, float],
                  like: Tensor) -> Tensor:
    """``(batch, number, 4)`` boxes ``(cx, cy, w, h)``: centres uniform over
    the image, widths and heights uniform in ``size_range``."""
    low, high = size_range
    centres = torch.rand(batch, number, 2, device=like.device,
                         dtype=like.dtype)
    sizes = low + (high - low) * torch.rand(
        batch, number, 2, device=like.device, dtype=like.dtype)
    return torch.cat([centres, sizes], -1)


def tempered_kl(student: Tensor, teacher: Tensor,
                temperature: float) -> Tensor:
    """Per query: ``T² · mean_c KL(softmax(t/T) ‖ softmax(s/T))_c`` over the
    class channels (KD-DETR's released loss: the mean over channels of the
    element-wise KL terms, on any head's logits)."""
    target = F.softmax(teacher / temperature, dim=-1)
    log_pred = F.log_softmax(student / temperature, dim=-1)
    kl = F.kl_div(log_pred, target, reduction='none').mean(-1)
    return kl * temperature**2


@MODELS.register_module()
class ConsistentPointsKD(DecoderQueryTerm):
    """KD-DETR: knowledge distillation at consistent distillation points
    (Wang et al., CVPR 2024), reimplemented from the paper and the
    authors' released loss.

    A DETR's own queries differ between student and teacher, so their
    outputs are not comparable position by position. KD-DETR puts one set
    of *distillation points* through both decoders (on each model's own
    encoder memory of the step) and distils the student's outputs at
    those points to the teacher's, background points included:

    - general points: ``num_general`` boxes per image drawn afresh each
      step, centres uniform over the image, sizes uniform in
      ``size_range`` (our sampler: the paper samples uniformly and does
      not state the sizes);
    - specific points: the teacher's own query boxes of the step (DAB-DETR
      anchors, DINO proposals), all of them, or the ``num_specific`` the
      teacher is most confident about.

    Per student decoder layer (every layer, or the last) against the
    teacher's last layer, with ``w`` the teacher's highest class
    probability at the point (detached), summed over the layers:

    - class: ``Σ_p w_p · T² · mean_c KL(softmax(t_p/T) ‖ softmax(s_p/T))``
      at ``temperature`` 10, summed over the points and images, weight
      ``cls_weight`` 1 — the released code's loss, on sigmoid heads too;
    - boxes: ``Σ_p w_p · mean_coord |s_p − t_p| / Σ_p w_p``, weight
      ``l1_weight`` 5, and ``Σ_p w_p (1 − GIoU) / Σ_p w_p``, weight
      ``giou_weight`` 2.

    The points are boxes, made into queries as the model makes its own
    (:mod:`mmkd.heads.query_points`): DAB-DETR, DINO and two-stage
    Deformable DETR, student and teacher in any pairing (with the
    teacher's classes and scoring); the other families' positional
    queries are learned embeddings, which no box maps to (a build-time
    error says so). The student's own queries, matching and loss are
    untouched: the points are an extra decoder run, which costs one
    student and one teacher decoder pass per step. Reads one teacher.

    Args:
        head: the student's DETR head path. Default ``'bbox_head'``.
        teacher_head: the teacher's; defaults to ``head``.
        num_general: general points per image. Default 100.
        size_range: the general points' width and height range (fractions
            of the image). Default ``(0.02, 0.5)``.
        num_specific: how many of the teacher's queries to use (its most
            confident); ``None`` (default): all.
        student_layers: ``'all'`` decoder layers (default, as the released
            code) or the ``'last'``.
        temperature: of the class KD. Default 10.
        cls_weight, l1_weight, giou_weight: 1, 5, 2 (the released code).
        loss_weight: the term's weight. Default 1.0.
        warmup_iters: the term is off for the first N iterations.

    Examples:
        >>> distill = dict(
        ...     points=dict(type='ConsistentPointsKD', num_general=100))
    """

    def __init__(self,
                 head: str = 'bbox_head',
                 teacher_head: Optional[str] = None,
                 num_general: int = 100,
                 size_range: Tuple[float, float] = (0.02, 0.5),
                 num_specific: Optional[int] = None,
                 student_layers: str = 'all',
                 temperature: float = 10.0,
                 cls_weight: float = 1.0,
                 l1_weight: float = 5.0,
                 giou_weight: float = 2.0,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(head=head, teacher_head=teacher_head,
                         loss_weight=loss_weight, warmup_iters=warmup_iters)
        if not isinstance(num_general, int) or num_general < 0:
            raise ValueError(f'num_general is an integer >= 0; got '
                             f'{num_general!r}.')
        if num_specific is not None and (
                not isinstance(num_specific, int) or num_specific < 0):
            raise ValueError('num_specific is None (all the teacher\'s '
                             f'queries) or an integer >= 0; got '
                             f'{num_specific!r}.')
        if num_general == 0 and num_specific == 0:
            raise ValueError('num_general and num_specific are both 0: the '
                             'term would have no point to distil at.')
        low, high = size_range
        if not 0 < low <= high <= 1:
            raise ValueError('size_range is (low, high) with 0 < low <= '
                             f'high <= 1; got {size_range!r}.')
        if student_layers not in STUDENT_LAYERS:
            raise ValueError(f'student_layers is one of {STUDENT_LAYERS}; '
                             f'got {student_layers!r}.')
        if not temperature > 0:
            raise ValueError(f'temperature must be > 0; got {temperature}.')
        self.num_general = num_general
        self.size_range = (float(low), float(high))
        self.num_specific = num_specific
        self.student_layers = student_layers
        self.temperature = float(temperature)
        self.cls_weight = check_loss_weight(cls_weight, 'cls_weight')
        self.l1_weight = check_loss_weight(l1_weight, 'l1_weight')
        self.giou_weight = check_loss_weight(giou_weight, 'giou_weight')

    def check_families(self, families) -> None:
        """The points are boxes: both models must make queries from them."""
        for side, family in families.items():
            require_box_queries(family, f'Term {self.name!r}: the {side}')

    def points(self, teacher_call) -> Tensor:
        """``(B, P, 4)``: this step's general and specific points."""
        own = own_query_boxes(self.families['teacher'], teacher_call)
        specific = own
        if self.num_specific is not None:
            k = min(self.num_specific, own.shape[1])
            detector = teacher_call.owner
            head = self.module(detector, self.teacher_head)
            with torch.no_grad():
                cls, _ = decode_points(head, self.families['teacher'],
                                       teacher_call, own)
            probs = teacher_probabilities(cls[-1].float(),
                                          bool(head.loss_cls.use_sigmoid))
            confidence = teacher_confidence(probs, bool(
                head.loss_cls.use_sigmoid))
            index = confidence.topk(k, dim=1).indices
            specific = own.gather(1, index[..., None].expand(-1, -1, 4))
        general = uniform_boxes(own.shape[0], self.num_general,
                                self.size_range, own)
        return torch.cat([general, specific], 1).detach()

    def compute(self, student_calls: MethodCalls,
                teacher_calls: MethodCalls,
                data_samples: Sequence[BaseDataElement]) -> Tensor:
        s_call = student_calls.last('forward_decoder')
        t_call = teacher_calls.last('forward_decoder')
        points = self.points(t_call)
        t_head = self.module(t_call.owner, self.teacher_head)
        with torch.no_grad():
            t_cls, t_box = decode_points(t_head, self.families['teacher'],
                                         t_call, points)
        s_head = self.module(s_call.owner, self.head)
        s_cls, s_box = decode_points(s_head, self.families['student'],
                                     s_call, points)
        layers = range(s_cls.shape[0]) if self.student_layers == 'all' \
            else [s_cls.shape[0] - 1]
        use_sigmoid = bool(t_head.loss_cls.use_sigmoid)
        return sum(self.points_loss(s_cls[i], s_box[i], t_cls[-1],
                                    t_box[-1], use_sigmoid)
                   for i in layers)

    def points_loss(self, cls_s: Tensor, box_s: Tensor, cls_t: Tensor,
                    box_t: Tensor, use_sigmoid: bool) -> Tensor:
        """One student layer's loss at the points, ``(B, P, ·)`` inputs."""
        cls_s, box_s = cls_s.flatten(0, 1).float(), box_s.flatten(0, 1).float()
        cls_t = cls_t.flatten(0, 1).detach().float()
        box_t = box_t.flatten(0, 1).detach().float()
        weight = teacher_confidence(
            teacher_probabilities(cls_t, use_sigmoid), use_sigmoid)
        cls_loss = (weight * tempered_kl(cls_s, cls_t,
                                         self.temperature)).sum()
        norm = weight.sum().clamp(min=torch.finfo(weight.dtype).eps)
        l1 = (box_s - box_t).abs().mean(-1)
        giou = bbox_overlaps(bbox_cxcywh_to_xyxy(box_s),
                             bbox_cxcywh_to_xyxy(box_t), mode='giou',
                             is_aligned=True)
        return (self.cls_weight * cls_loss +
                (self.l1_weight * (weight * l1).sum() +
                 self.giou_weight * (weight * (1 - giou)).sum()) / norm)
