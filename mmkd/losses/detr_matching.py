"""DETRDistill's Hungarian-matching logits distillation."""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ..heads.query_views import QueryLayer, QueryPredictions
from ..registry import MODELS
from ..utils.validation import check_loss_weight
from .detr_head_term import QueryHeadTerm


def teacher_probabilities(logits: Tensor, use_sigmoid: bool) -> Tensor:
    """The teacher's class probabilities: per-class sigmoids, or a softmax
    whose last channel is the background."""
    return logits.sigmoid() if use_sigmoid else logits.softmax(-1)


def soft_class_cost(student: Tensor, target: Tensor,
                    use_sigmoid: bool) -> Tensor:
    """``(Q, T)``: the soft cross-entropy of each student query's logits
    against each teacher query's probabilities.

    Sigmoid heads: the binary cross-entropy averaged over the classes,
    ``mean_c [softplus(s_c) - p_c s_c]``; softmax heads: ``-sum_c p_c log
    softmax(s)_c``.
    """
    if use_sigmoid:
        return (F.softplus(student).mean(-1, keepdim=True) -
                student @ target.t() / student.shape[-1])
    return -student.log_softmax(-1) @ target.t()


def teacher_confidence(probs: Tensor, use_sigmoid: bool) -> Tensor:
    """Each teacher query's highest foreground probability."""
    return (probs if use_sigmoid else probs[..., :-1]).max(-1).values


@MODELS.register_module()
class HungarianMatchingKD(QueryHeadTerm):
    """Hungarian-matching logits distillation (DETRDistill, Chang et al.,
    ICCV 2023).

    DETR queries are a set, so the student's are matched one to one to the
    teacher's before they are compared: per decoder layer pair and image,
    the Hungarian algorithm minimises the cost ``cls_weight · soft
    cross-entropy + l1_weight · L1(boxes) - giou_weight · GIoU(boxes)``
    between the student's matching queries and the teacher's predictions
    (the teacher's soft scores play the ground truth; normalised
    ``(cx, cy, w, h)`` boxes), then the matched pairs are distilled with the
    same three terms and weights:

    - class: the soft cross-entropy of every matched pair, background-
      leaning teacher queries included (binary cross-entropy with the
      teacher's sigmoid scores for sigmoid heads, cross-entropy with its
      softmax for softmax heads), averaged over the pairs;
    - boxes: L1 (summed over the four coordinates) and ``1 - GIoU``, each
      pair weighted by the teacher's highest foreground probability
      (``score_reweight``: a background query's box teaches little),
      normalised by the sum of those weights.

    The layer losses are summed, as a DETR sums its decoder layers' own
    losses. Defaults are the authors' Deformable DETR configs (matching
    and loss weights 1 / 5 / 2, score reweighting); the student's own
    Hungarian assignment is untouched (this is a second matching, to the
    teacher, as the paper's). One matching per image and layer runs on
    the CPU (SciPy), as the student's own matcher does.

    Args:
        head: the student's DETR-family head. Default ``'bbox_head'``.
        teacher_head: the teacher's; defaults to ``head``.
        layers: decoder layer pairs (see
            :func:`~mmkd.heads.query_views.resolve_layer_pairs`; default:
            aligned from the last layer, layer by layer for equal depths).
        cls_weight: weight of the class cost and loss. Default 1.0.
        l1_weight: weight of the box L1 cost and loss. Default 5.0.
        giou_weight: weight of the GIoU cost and loss. Default 2.0.
        score_reweight: weight the box losses by the teacher's confidence.
        loss_weight: the term's weight. Default 1.0.
        warmup_iters: the term is off for the first N iterations.

    Examples:
        >>> distill = dict(
        ...     match=dict(type='HungarianMatchingKD', loss_weight=1.0))
    """

    def __init__(self,
                 head: str = 'bbox_head',
                 teacher_head: str = None,
                 layers=None,
                 cls_weight: float = 1.0,
                 l1_weight: float = 5.0,
                 giou_weight: float = 2.0,
                 score_reweight: bool = True,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(head=head, teacher_head=teacher_head, layers=layers,
                         loss_weight=loss_weight, warmup_iters=warmup_iters)
        self.cls_weight = check_loss_weight(cls_weight, 'cls_weight')
        self.l1_weight = check_loss_weight(l1_weight, 'l1_weight')
        self.giou_weight = check_loss_weight(giou_weight, 'giou_weight')
        self.score_reweight = score_reweight

    def match(self, cls_s: Tensor, box_s: Tensor, probs_t: Tensor,
              box_t: Tensor, use_sigmoid: bool) -> Tuple[Tensor, Tensor]:
        """The student and teacher query indices matched one to one."""
        with torch.no_grad():
            cost = self.cls_weight * soft_class_cost(
                cls_s.float(), probs_t.float(), use_sigmoid)
            cost = cost + self.l1_weight * torch.cdist(
                box_s.float(), box_t.float(), p=1)
            cost = cost - self.giou_weight * bbox_overlaps(
                bbox_cxcywh_to_xyxy(box_s.float()),
                bbox_cxcywh_to_xyxy(box_t.float()), mode='giou')
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        device = cls_s.device
        return (torch.as_tensor(rows, dtype=torch.long, device=device),
                torch.as_tensor(cols, dtype=torch.long, device=device))

    def layer_loss(self, layer: QueryLayer, use_sigmoid: bool) -> Tensor:
        """The loss of one decoder layer pair, over the batch."""
        cls_terms: List[Tensor] = []
        box_terms: List[Tuple[Tensor, Tensor, Tensor]] = []
        for b in range(layer.cls_student.shape[0]):
            cls_s, box_s = layer.cls_student[b], layer.box_student[b]
            probs_t = teacher_probabilities(layer.cls_teacher[b].float(),
                                            use_sigmoid)
            box_t = layer.box_teacher[b].float()
            rows, cols = self.match(cls_s, box_s, probs_t, box_t,
                                    use_sigmoid)
            s, p = cls_s[rows].float(), probs_t[cols]
            if use_sigmoid:
                cls_terms.append(F.binary_cross_entropy_with_logits(
                    s, p, reduction='none').mean(-1))
            else:
                cls_terms.append(-(p * s.log_softmax(-1)).sum(-1))
            weight = teacher_confidence(p, use_sigmoid) \
                if self.score_reweight else torch.ones_like(p[:, 0])
            pred, target = box_s[rows].float(), box_t[cols]
            l1 = (pred - target).abs().sum(-1)
            giou = bbox_overlaps(bbox_cxcywh_to_xyxy(pred),
                                 bbox_cxcywh_to_xyxy(target), mode='giou',
                                 is_aligned=True)
            box_terms.append((weight, l1, 1 - giou))
        cls_loss = torch.cat(cls_terms).mean()
        weight = torch.cat([w for w, _, _ in box_terms])
        norm = weight.sum().clamp(min=torch.finfo(weight.dtype).eps)
        l1_loss = (weight * torch.cat([x for _, x, _ in box_terms])).sum()
        giou_loss = (weight * torch.cat([g for _, _, g in box_terms])).sum()
        return (self.cls_weight * cls_loss +
                (self.l1_weight * l1_loss + self.giou_weight * giou_loss) /
                norm)

    def loss(self, preds: QueryPredictions) -> Tensor:
        return sum(self.layer_loss(layer, preds.use_sigmoid)
                   for layer in preds.layers)
