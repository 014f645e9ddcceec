"""Run a DETR's decoder and head on reference boxes of our choosing.

KD-DETR's distillation points and DETRDistill's teacher query group are
extra queries put through a decoder beside the model's own: given boxes
(normalised ``(cx, cy, w, h)``) they become that family's queries, go
through its decoder on the memory of *this* step (the recorded call of the
detector's ``forward_decoder``: its encoder memory, masks and level layout
are reused, nothing is recomputed) and through its head, which returns per
decoder layer the class logits and boxes of each point.

Only families whose queries are boxes can take points: DAB-DETR (the
query's positional part is an anchor box; its content part starts at
zero) and DINO (reference boxes; the content of point ``k`` is the
model's learned query ``k mod num_queries``, as DINO gives its ``k``-th
query the ``k``-th proposal). Families whose positional queries are learned
embeddings (DETR, Conditional DETR, Deformable DETR) have no box to put
there; :func:`point_family` says so at build time.

``forward_decoder`` and the head are called through their class's
methods, past the recorders' instance wrappers, so these extra runs are
never recorded as the model's own calls.
"""
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmdet.models.layers.transformer import inverse_sigmoid
from torch import Tensor

from .query_views import query_family
from .views import bind_call

#: the families whose decoder queries are boxes
POINT_FAMILIES = ('DAB-DETR', 'DINO')


def point_family(detector: nn.Module, head_path: str, where: str) -> str:
    """The family of ``detector`` when it can decode given boxes.

    Args:
        detector: the student or teacher detector.
        head_path: its head's path, e.g. ``'bbox_head'``.
        where: e.g. ``"Term 'points': the student"``, for the messages.

    Raises:
        TypeError: the head is no known DETR family, or one whose queries
            are learned embeddings rather than boxes.
        ValueError: a DAB-DETR with pattern embeddings (its queries are
            repeated per pattern, so a point is not one query).
    """
    head = dict(detector.named_modules()).get(head_path)
    if head is None:
        raise KeyError(f'{where} has no module {head_path!r} (its DETR '
                       'head).')
    family = query_family(head, f'{where} head {head_path!r}')
    if family not in POINT_FAMILIES:
        raise TypeError(
            f'{where} is a {family} ({type(head).__name__}), whose '
            'positional queries are learned embeddings, not boxes, so no '
            'sampled box can be put through its decoder. Point and '
            f'query-group terms read {", ".join(POINT_FAMILIES)} models; '
            'for this one use HungarianMatchingKD (every DETR family).')
    if not callable(getattr(detector, 'forward_decoder', None)):
        raise TypeError(f'{where} ({type(detector).__name__}) has no '
                        'forward_decoder() to put points through.')
    if family == 'DAB-DETR' and getattr(detector, 'num_patterns', 0):
        raise ValueError(
            f'{where} is a DAB-DETR with num_patterns='
            f'{detector.num_patterns}: each anchor is queried once per '
            'pattern, so sampled boxes are not single queries. Use '
            'num_patterns=0 (mmdet\'s default).')
    return family


def decoder_arguments(call) -> Dict[str, object]:
    """A recorded ``forward_decoder`` call's arguments by name."""
    args = dict(bind_call(call))
    args.pop('self', None)
    args.update(args.pop('kwargs', None) or {})
    return args


def points_as_queries(detector: nn.Module, family: str,
                      arguments: Dict[str, object],
                      boxes: Tensor) -> Dict[str, object]:
    """The decoder's arguments with ``boxes`` ``(B, P, 4)`` as its queries
    (and no self-attention mask: DINO's denoising groups are left out)."""
    args = dict(arguments)
    batch, points = boxes.shape[:2]
    boxes = boxes.detach().clamp(1e-4, 1 - 1e-4)
    if family == 'DAB-DETR':
        dims = detector.decoder.query_dim
        args['query_pos'] = inverse_sigmoid(boxes[..., :dims])
        args['query'] = boxes.new_zeros(batch, points, detector.embed_dims)
    else:  # DINO
        content = detector.query_embedding.weight
        index = torch.arange(points, device=boxes.device) % content.shape[0]
        args['query'] = content[index].unsqueeze(0).expand(batch, -1, -1)
        args['reference_points'] = boxes
        args['dn_mask'] = None
    return args


def decode_points(head: nn.Module, family: str, decoder_call,
                  boxes: Tensor) -> Tuple[Tensor, Tensor]:
    """Class logits and boxes of ``boxes`` put through the decoder and head.

    Args:
        head: the detector's DETR head.
        family: :func:`point_family` of the detector.
        decoder_call: the recorded ``forward_decoder`` call of this step
            (its owner is the detector).
        boxes: ``(B, P, 4)`` normalised ``(cx, cy, w, h)``, detached.

    Returns:
        ``(L, B, P, C)`` logits and ``(L, B, P, 4)`` boxes, one per decoder
        layer.
    """
    detector = decoder_call.owner
    args = points_as_queries(detector, family, decoder_arguments(
        decoder_call), boxes)
    outputs = type(detector).forward_decoder(detector, **args)
    cls_scores, bbox_preds = type(head).forward(
        head, outputs['hidden_states'], outputs['references'])
    return cls_scores, bbox_preds


def own_query_boxes(family: str, decoder_call) -> Tensor:
    """``(B, Q, 4)``: the boxes a model's own queries started from at this
    step (DAB-DETR's anchors, DINO's selected proposals; a training DINO's
    denoising queries come first and are dropped by the caller)."""
    args = decoder_arguments(decoder_call)
    if family == 'DAB-DETR':
        boxes = args['query_pos'].sigmoid()
        if boxes.shape[-1] == 2:  # anchor points: no size
            boxes = torch.cat([boxes, torch.full_like(boxes, 0.1)], -1)
        return boxes.detach()
    return args['reference_points'].detach()
