"""Run a DETR's decoder and head on queries of our choosing.

KD-DETR's distillation points and DETRDistill's teacher query group are
extra queries put through a decoder beside the model's own. They go
through its decoder on the memory of *this* step (the recorded call of the
detector's ``forward_decoder``: its encoder memory, masks and level layout
are reused, nothing is recomputed) and through its head, which returns per
decoder layer the class logits and boxes of each extra query.

Two kinds of DETR take extra queries differently:

- *box queries* (:data:`BOX_QUERY_FAMILIES`): a query is made from a
  normalised ``(cx, cy, w, h)`` box, as the model makes its own: DAB-DETR
  (the box is the anchor, the content starts at zero), DINO (the box is the
  reference, point ``k`` takes the model's learned content query ``k mod
  num_queries``, as DINO gives its ``k``-th query the ``k``-th proposal)
  and two-stage Deformable DETR (content and position from the box through
  the model's own ``pos_trans_fc``, as it does for its proposals). Any box
  goes: sampled points, or another model's query boxes;
- *embedding queries*: DETR, Conditional DETR and single-stage Deformable
  DETR learn their positional queries as embeddings; no box maps to one,
  but a model of the same family and width can take another's query
  embeddings (:func:`embeddings_as_queries`).

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

#: the families whose decoder queries can be made from boxes
BOX_QUERY_FAMILIES = ('DAB-DETR', 'DINO', 'two-stage Deformable DETR')
#: the decoder arguments that carry a model's own queries
QUERY_ARGUMENTS = ('query', 'query_pos', 'reference_points')


def decoding_family(detector: nn.Module, head_path: str, where: str) -> str:
    """The family of ``detector`` as its decoder takes extra queries:
    :func:`~mmkd.heads.query_views.query_family`, with two-stage Deformable
    DETR told apart from single-stage (only its queries come from boxes).

    Args:
        detector: the student or teacher detector.
        head_path: its head's path, e.g. ``'bbox_head'``.
        where: e.g. ``"Term 'points': the student"``, for the messages.

    Raises:
        KeyError: no module at ``head_path``.
        TypeError: the head is of no known DETR family, or the detector
            has no ``forward_decoder``.
        ValueError: a DAB-DETR with pattern embeddings (its queries are
            repeated per pattern, so an extra query is not one query).
    """
    head = dict(detector.named_modules()).get(head_path)
    if head is None:
        raise KeyError(f'{where} has no module {head_path!r} (its DETR '
                       'head).')
    family = query_family(head, f'{where} head {head_path!r}')
    if not callable(getattr(detector, 'forward_decoder', None)):
        raise TypeError(f'{where} ({type(detector).__name__}) has no '
                        'forward_decoder() to put queries through.')
    if family == 'DAB-DETR' and getattr(detector, 'num_patterns', 0):
        raise ValueError(
            f'{where} is a DAB-DETR with num_patterns='
            f'{detector.num_patterns}: each anchor is queried once per '
            'pattern, so an extra box is not a single query. Use '
            'num_patterns=0 (mmdet\'s default).')
    if family == 'Deformable DETR' and getattr(detector, 'as_two_stage',
                                               False):
        return 'two-stage Deformable DETR'
    return family


def require_box_queries(family: str, where: str) -> None:
    """A TypeError unless ``family`` makes its queries from boxes."""
    if family not in BOX_QUERY_FAMILIES:
        raise TypeError(
            f'{where} is a {family}, whose positional queries are learned '
            'embeddings, not boxes, so no sampled box can be put through '
            'its decoder. KD-DETR points read '
            f'{", ".join(BOX_QUERY_FAMILIES)} models; for this one use '
            'HungarianMatchingKD (every DETR family).')


def decoder_arguments(call) -> Dict[str, object]:
    """A recorded ``forward_decoder`` call's arguments by name."""
    args = dict(bind_call(call))
    args.pop('self', None)
    args.update(args.pop('kwargs', None) or {})
    return args


def boxes_as_queries(detector: nn.Module, family: str,
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
    elif family == 'DINO':
        content = detector.query_embedding.weight
        index = torch.arange(points, device=boxes.device) % content.shape[0]
        args['query'] = content[index].unsqueeze(0).expand(batch, -1, -1)
        args['reference_points'] = boxes
        args['dn_mask'] = None
    else:  # two-stage Deformable DETR, as its pre_decoder does
        position = detector.pos_trans_norm(detector.pos_trans_fc(
            detector.get_proposal_pos_embed(inverse_sigmoid(boxes))))
        args['query_pos'], args['query'] = torch.split(
            position, detector.embed_dims, dim=2)
        args['reference_points'] = boxes
    return args


def embeddings_as_queries(arguments: Dict[str, object],
                          teacher_arguments: Dict[str, object],
                          where: str) -> Dict[str, object]:
    """The student decoder's arguments with the teacher's query embeddings
    (content, position and, for Deformable DETR, reference points) in
    place of its own; a ValueError when their widths differ."""
    args = dict(arguments)
    for key in QUERY_ARGUMENTS:
        if key not in args:
            continue
        own, theirs = args[key], teacher_arguments[key]
        if own.shape[-1] != theirs.shape[-1]:
            raise ValueError(
                f'{where}: the teacher\'s {key} is {theirs.shape[-1]} wide, '
                f'the student\'s {own.shape[-1]}; a teacher query group of '
                'learned embeddings needs decoders of the same width (or '
                'box queries: DAB-DETR, DINO, two-stage Deformable DETR).')
        args[key] = theirs.detach()
    return args


def head_outputs(head: nn.Module,
                 decoder_outputs: Dict[str, object]) -> Tuple[Tensor, Tensor]:
    """The head's forward on a ``forward_decoder`` result: per layer
    logits and boxes (DETR's decoder returns no references)."""
    inputs = [decoder_outputs['hidden_states']]
    if 'references' in decoder_outputs:
        inputs.append(decoder_outputs['references'])
    cls_scores, bbox_preds = type(head).forward(head, *inputs)[:2]
    return cls_scores, bbox_preds


def run_decoder(head: nn.Module, decoder_call,
                args: Dict[str, object]) -> Tuple[Tensor, Tensor]:
    """``forward_decoder`` of the call's detector on ``args``, then the
    head: ``(L, B, P, C)`` logits and ``(L, B, P, 4)`` boxes."""
    detector = decoder_call.owner
    return head_outputs(head,
                        type(detector).forward_decoder(detector, **args))


def decode_points(head: nn.Module, family: str, decoder_call,
                  boxes: Tensor) -> Tuple[Tensor, Tensor]:
    """Class logits and boxes of ``boxes`` put through the decoder and head.

    Args:
        head: the detector's DETR head.
        family: :func:`decoding_family` of the detector (a box-query one).
        decoder_call: the recorded ``forward_decoder`` call of this step
            (its owner is the detector).
        boxes: ``(B, P, 4)`` normalised ``(cx, cy, w, h)``, detached.

    Returns:
        ``(L, B, P, C)`` logits and ``(L, B, P, 4)`` boxes, one per decoder
        layer.
    """
    args = boxes_as_queries(decoder_call.owner, family,
                            decoder_arguments(decoder_call), boxes)
    return run_decoder(head, decoder_call, args)


def own_query_boxes(family: str, decoder_call) -> Tensor:
    """``(B, Q, 4)``: the boxes a box-query model's own queries started
    from at this step (DAB-DETR's anchors, DINO's and two-stage Deformable
    DETR's selected proposals). Read from an eval-mode model (a teacher):
    a training DINO's denoising queries would come first."""
    args = decoder_arguments(decoder_call)
    if family == 'DAB-DETR':
        boxes = args['query_pos'].sigmoid()
        if boxes.shape[-1] == 2:  # anchor points: no size
            boxes = torch.cat([boxes, torch.full_like(boxes, 0.1)], -1)
        return boxes.detach()
    return args['reference_points'].detach()
