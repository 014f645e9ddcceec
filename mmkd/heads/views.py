"""Head views: one adapter per dense-head family, giving every head-level
term the same :class:`~mmkd.heads.predictions.DensePredictions`.

A view reads two records (:class:`~mmkd.recorders.MethodCalls`): the
student head's ``forward`` and ``get_targets`` calls of the step (its own
loss computation: no second assigner run) and the teacher head's
``forward`` call (tensor mode, no loss). It flattens both sides' outputs
prior by prior and the student's targets the same way; decoding and
encoding use each head's own box coder. All of it stays on the device.

Supported families (``type(head).get_targets`` decides, so subclasses that
keep the family's targets, e.g. ``LDHead``, are supported too):

- ``AnchorHead``: ``AnchorHead``, ``RetinaHead``, ``RPNHead`` and other
  subclasses that keep ``AnchorHead.get_targets``.
- ``ATSSHead``, ``GFLHead`` (box distributions) and ``FCOSHead``
  (anchor-free points).
"""
import inspect
from typing import Dict, List, Sequence, Tuple, Type

import torch
import torch.nn as nn
from mmdet.models.dense_heads import (AnchorHead, ATSSHead, FCOSHead,
                                      GFLHead)
from mmdet.structures.bbox import distance2bbox
from torch import Tensor

from ..recorders import MethodCalls
from .predictions import DensePredictions

STUDENT_METHODS = ('forward', 'get_targets')
TEACHER_METHODS = ('forward',)


def flatten_levels(maps: Sequence[Tensor], channels: int) -> Tensor:
    """Per-level (B, A*K, H, W) maps as (B*P, K) rows, in mmdet's prior
    order (level, row, column, anchor)."""
    batch, priors_per_location = maps[0].shape[0], \
        maps[0].shape[1] // channels
    # levels joined along their locations, then one permuting copy
    joined = torch.cat([m.reshape(batch, priors_per_location, channels, -1)
                        for m in maps], 3)
    return joined.permute(0, 3, 1, 2).reshape(-1, channels)


def flatten_targets(levels: Sequence[Tensor], batch: int,
                    *trailing: int) -> Tensor:
    """Per-level (B, P_l, *trailing) or (B*P_l, *trailing) targets as
    (B*P, *trailing) rows in the order of :func:`flatten_levels`."""
    rows = [t.reshape(batch, -1, *trailing) for t in levels]
    return torch.cat(rows, 1).reshape(-1, *trailing)


def bind_call(call) -> Dict[str, object]:
    """The arguments of a recorded call, by parameter name."""
    func = getattr(type(call.owner), call.name)
    bound = inspect.signature(func).bind(call.owner, *call.args,
                                         **call.kwargs)
    return bound.arguments


class DenseHeadView:
    """Base class: how one head family lays out and encodes its priors."""
    family = ''
    head_class: Type[nn.Module] = nn.Module

    @classmethod
    def supports(cls, head: nn.Module) -> bool:
        return isinstance(head, cls.head_class) and \
            type(head).get_targets is cls.head_class.get_targets

    def layout(self, head: nn.Module) -> Dict[str, object]:
        """What must match between student and teacher, prior by prior."""
        return dict(
            family=self.family,
            strides=[tuple(s) for s in head.prior_generator.strides],
            priors_per_location=head.num_base_priors,
            class_channels=head.cls_out_channels)

    def reg_channels(self, head: nn.Module) -> int:
        return 4

    # -- cross-head (CrossKD) -------------------------------------------------
    #: the predictor convs after the stacked ``cls_convs``/``reg_convs``
    predictors: Tuple[str, str] = ('', '')
    #: whether the box output goes through the level's ``Scale``
    scaled = True

    def supports_cross_head(self, head: nn.Module) -> bool:
        """Whether :meth:`cross_head` can run the rest of ``head``."""
        return all(hasattr(head, name) for name in
                   ('cls_convs', 'reg_convs') + self.predictors) and \
            all(self.predictors)

    def cross_head(self, head: nn.Module, cls_feat: Tensor, reg_feat: Tensor,
                   level: int, start: int) -> Tuple[Tensor, Tensor]:
        """Class and box maps of ``head`` run from its ``start``-th stacked
        conv on (other) features of one level, as in training mode."""
        for conv in head.cls_convs[start:]:
            cls_feat = conv(cls_feat)
        for conv in head.reg_convs[start:]:
            reg_feat = conv(reg_feat)
        cls_name, reg_name = self.predictors
        reg = getattr(head, reg_name)(reg_feat)
        if self.scaled:
            reg = head.scales[level](reg).float()
        return getattr(head, cls_name)(cls_feat), self.box_output(head, reg)

    def box_output(self, head: nn.Module, reg: Tensor) -> Tensor:
        return reg

    # -- collecting ---------------------------------------------------------
    def collect(self, student: MethodCalls,
                teacher: MethodCalls) -> DensePredictions:
        """Student and teacher outputs and the student's assignment."""
        forward = student.last('forward')
        head, t_head = forward.owner, teacher.last('forward').owner
        cls_maps, reg_maps = forward.result[:2]
        t_cls_maps, t_reg_maps = teacher.last('forward').result[:2]
        batch = cls_maps[0].shape[0]
        num_levels = len(cls_maps)
        sizes = [m.shape[-2:].numel() * head.num_base_priors
                 for m in cls_maps]
        dtype = cls_maps[0].dtype
        cls_s = flatten_levels(cls_maps, head.cls_out_channels)
        reg_s = flatten_levels(reg_maps, self.reg_channels(head))
        cls_t = flatten_levels(t_cls_maps, t_head.cls_out_channels)
        reg_t = flatten_levels(t_reg_maps, self.reg_channels(t_head))
        if cls_t.shape != cls_s.shape or reg_t.shape != reg_s.shape:
            raise ValueError(
                f'Teacher head outputs {tuple(cls_t.shape)} (classes) and '
                f'{tuple(reg_t.shape)} (boxes) do not line up with the '
                f'student\'s {tuple(cls_s.shape)} and {tuple(reg_s.shape)} '
                'prior by prior: the models must see the same input size '
                'and lay out the same priors.')
        strides = torch.cat([
            cls_s.new_full((n, ), float(head.prior_generator.strides[i][0]))
            for i, n in enumerate(sizes)]).repeat(batch)
        targets = self.targets(student.last('get_targets'), batch,
                               num_levels)
        return DensePredictions(
            cls_student=cls_s,
            cls_teacher=cls_t.detach().to(dtype),
            reg_student=reg_s,
            reg_teacher=self.teacher_scale(
                t_head, reg_t.detach().to(reg_s.dtype), strides),
            strides=strides,
            num_classes=head.num_classes,
            use_sigmoid=head.use_sigmoid_cls,
            level_sizes=sizes,
            view=self,
            student_head=head,
            teacher_head=t_head,
            **targets)

    def targets(self, call, batch: int, num_levels: int) -> dict:
        """priors, labels, label_weights, bbox_targets, avg_factor and
        gt_instances from the student's ``get_targets`` call."""
        raise NotImplementedError

    def teacher_scale(self, head: nn.Module, reg: Tensor,
                      strides: Tensor) -> Tensor:
        """The teacher's box outputs on the student's training scale."""
        return reg

    def mean_teacher_reg(self, regs: Sequence[Tensor],
                         head: nn.Module) -> Tensor:
        """Several teachers' (N, R) box outputs averaged, in this
        family's encoding (deltas or distances: their mean)."""
        return torch.stack(list(regs)).mean(0)

    # -- encodings ----------------------------------------------------------
    def decode(self, preds: DensePredictions, reg: Tensor,
               head: nn.Module) -> Tensor:
        raise NotImplementedError

    def offsets(self, preds: DensePredictions, reg: Tensor,
                head: nn.Module) -> Tensor:
        raise NotImplementedError

    def target_offsets(self, preds: DensePredictions) -> Tensor:
        raise NotImplementedError

    def target_boxes(self, preds: DensePredictions) -> Tensor:
        raise NotImplementedError


def _safe_targets(preds: DensePredictions) -> Tensor:
    """Box targets with each negative's replaced by its own prior, so
    encoding them gives finite values (later masked out)."""
    return torch.where(preds.pos[:, None], preds.bbox_targets,
                       preds.priors.to(preds.bbox_targets.dtype))


class AnchorHeadView(DenseHeadView):
    """``AnchorHead`` family (RetinaNet, RPN, SSD-style): the head trains on
    its box coder's deltas, or on decoded boxes with ``reg_decoded_bbox``
    (then ``target_offsets`` are the coder's deltas of the gt boxes)."""
    family = 'AnchorHead'
    head_class = AnchorHead
    predictors = ('retina_cls', 'retina_reg')  # RetinaHead's
    scaled = False

    def targets(self, call, batch: int, num_levels: int) -> dict:
        args = bind_call(call)
        labels, label_weights, bbox_targets, _, avg_factor = call.result[:5]
        anchors = torch.stack([torch.cat(levels)
                               for levels in args['anchor_list']])
        return dict(
            priors=anchors.reshape(-1, 4),
            labels=flatten_targets(labels, batch),
            label_weights=flatten_targets(label_weights, batch),
            bbox_targets=flatten_targets(bbox_targets, batch, 4),
            avg_factor=avg_factor,
            gt_instances=list(args['batch_gt_instances']))

    def decode(self, preds, reg, head):
        return head.bbox_coder.decode(preds.priors, reg)

    def offsets(self, preds, reg, head):
        return reg

    def target_offsets(self, preds):
        head = preds.student_head
        if not head.reg_decoded_bbox:
            return preds.bbox_targets
        return head.bbox_coder.encode(preds.priors, _safe_targets(preds))

    def target_boxes(self, preds):
        head = preds.student_head
        if head.reg_decoded_bbox:
            return preds.bbox_targets
        return head.bbox_coder.decode(preds.priors, preds.bbox_targets)


class ATSSHeadView(AnchorHeadView):
    """``ATSSHead``: anchors and targets come with ``get_targets``' result;
    with its default ``reg_decoded_bbox=True`` the targets are gt boxes."""
    family = 'ATSSHead'
    head_class = ATSSHead
    predictors = ('atss_cls', 'atss_reg')
    scaled = True

    def targets(self, call, batch: int, num_levels: int) -> dict:
        args = bind_call(call)
        anchors, labels, label_weights, bbox_targets, _, avg_factor = \
            call.result[:6]
        return dict(
            priors=flatten_targets(anchors, batch, 4),
            labels=flatten_targets(labels, batch),
            label_weights=flatten_targets(label_weights, batch),
            bbox_targets=flatten_targets(bbox_targets, batch, 4),
            avg_factor=avg_factor,
            gt_instances=list(args['batch_gt_instances']))


class GFLHeadView(ATSSHeadView):
    """``GFLHead``: per box edge a distribution over ``reg_max + 1`` bins.

    ``reg_*`` rows hold the ``4 * (reg_max + 1)`` logits; ``offsets`` are
    the expected edge distances in stride units (the head's ``integral``),
    ``target_offsets`` the gt distances the distribution focal loss
    trains on (the head's coder, clamped below ``reg_max``)."""
    family = 'GFLHead'
    head_class = GFLHead
    predictors = ('gfl_cls', 'gfl_reg')

    def layout(self, head):
        return dict(super().layout(head), reg_max=head.reg_max)

    def reg_channels(self, head):
        return 4 * (head.reg_max + 1)

    def mean_teacher_reg(self, regs, head):
        """The edge distributions averaged (probabilities, as log-probs:
        softmax of the result gives the mean distribution)."""
        bins = head.reg_max + 1
        probs = [r.float().reshape(-1, 4, bins).softmax(-1) for r in regs]
        mean = torch.stack(probs).mean(0).clamp(min=1e-12).log()
        return mean.reshape(regs[0].shape).to(regs[0].dtype)

    @staticmethod
    def centers(preds: DensePredictions) -> Tensor:
        return (preds.priors[:, :2] + preds.priors[:, 2:]) / 2

    def offsets(self, preds, reg, head):
        return head.integral(reg)

    def decode(self, preds, reg, head):
        distances = head.integral(reg) * preds.strides[:, None]
        return distance2bbox(self.centers(preds), distances)

    def target_boxes(self, preds):
        return preds.bbox_targets  # GFL always stores the gt boxes

    def target_offsets(self, preds):
        stride = preds.strides[:, None]
        head = preds.student_head
        return head.bbox_coder.encode(self.centers(preds) / stride,
                                      _safe_targets(preds) / stride,
                                      head.reg_max)


class FCOSHeadView(DenseHeadView):
    """``FCOSHead``: points, (left, top, right, bottom) distances.

    With ``norm_on_bbox`` the head trains on distances in stride units; in
    eval mode (the teacher) it multiplies them by the stride, which the
    view undoes so both sides are on the training scale. Label weights are
    1 (FCOS ignores no point); ``avg_factor`` is the number of positives.
    """
    family = 'FCOSHead'
    head_class = FCOSHead
    predictors = ('conv_cls', 'conv_reg')

    def box_output(self, head, reg):
        # training mode: no multiplication by the stride
        return reg.clamp(min=0) if head.norm_on_bbox else reg.exp()

    def targets(self, call, batch: int, num_levels: int) -> dict:
        args = bind_call(call)
        labels, bbox_targets = call.result
        points = torch.cat(list(args['points'])).repeat(batch, 1)
        labels = flatten_targets(labels, batch)
        num_classes = call.owner.num_classes
        pos = (labels >= 0) & (labels < num_classes)
        return dict(
            priors=points,
            labels=labels,
            label_weights=torch.ones_like(labels, dtype=points.dtype),
            bbox_targets=flatten_targets(bbox_targets, batch, 4),
            avg_factor=pos.sum().clamp(min=1).to(points.dtype),
            gt_instances=list(args['batch_gt_instances']))

    def layout(self, head):
        return dict(super().layout(head), norm_on_bbox=head.norm_on_bbox)

    def teacher_scale(self, head, reg, strides):
        if head.norm_on_bbox and not head.training:
            return reg / strides[:, None]
        return reg

    def _pixels(self, reg, preds, head):
        return reg * preds.strides[:, None] if head.norm_on_bbox else reg

    def decode(self, preds, reg, head):
        return distance2bbox(preds.priors,
                             self._pixels(reg, preds, preds.student_head))

    def offsets(self, preds, reg, head):
        return reg

    def target_offsets(self, preds):
        return preds.bbox_targets

    def target_boxes(self, preds):
        return self.decode(preds, preds.bbox_targets, preds.student_head)


VIEWS: Tuple[Type[DenseHeadView], ...] = (GFLHeadView, ATSSHeadView,
                                          FCOSHeadView, AnchorHeadView)


def supported_heads() -> List[str]:
    return [view.head_class.__name__ + (' (and RetinaHead, RPNHead)'
                                        if view is AnchorHeadView else '')
            for view in VIEWS]


def view_for(head: nn.Module, where: str) -> DenseHeadView:
    """The view of ``head``'s family; a TypeError listing the supported
    families otherwise.

    Args:
        head: a dense head module.
        where: e.g. ``'student bbox_head'``, for the message.
    """
    for view in VIEWS:
        if view.supports(head):
            return view()
    raise TypeError(
        f'{where} is a {type(head).__name__}, which no head view supports: '
        f'head-level terms read {", ".join(supported_heads())} and '
        'subclasses that keep their get_targets().')


def check_alignment(student_head: nn.Module, teacher_head: nn.Module,
                    term: str) -> DenseHeadView:
    """The student's view, once the teacher's priors line up with it.

    Raises:
        TypeError: a head is not supported.
        ValueError: the two heads lay out different priors; the message
            lists what differs.
    """
    view = view_for(student_head, f'Term {term!r}: the student head')
    t_view = view_for(teacher_head, f'Term {term!r}: the teacher head')
    mine, theirs = view.layout(student_head), t_view.layout(teacher_head)
    diff = [f'{key}: student {mine.get(key)!r}, teacher {theirs.get(key)!r}'
            for key in dict(mine, **theirs)
            if mine.get(key) != theirs.get(key)]
    if diff:
        raise ValueError(
            f'Term {term!r}: the teacher head ({type(teacher_head).__name__})'
            f' does not lay out the same priors as the student head '
            f'({type(student_head).__name__}), so their predictions cannot '
            f'be compared prior by prior; differs: {"; ".join(diff)}.')
    return view
