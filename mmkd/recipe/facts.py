"""What the recipe reads from a model: its family, its heads, its widths.

:func:`read_model` turns a built mmdet detector or mmseg segmentor into a
:class:`ModelFacts`: the task and kind (one-stage dense detector,
two-stage R-CNN, DETR, other detector, segmentor, depth estimator), the
feature place a neck term would read and its levels (channels and
strides, measured by running the backbone and neck on a zero image), the
dense head's family and prior layout as mmkd's head views see them
(:mod:`mmkd.heads.views`), the R-CNN box head, and a segmentor's decode
head and classes. The decisions are in :mod:`mmkd.recipe.rules`.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..heads.views import view_for

#: the kinds of model the recipe tells apart
KINDS = ('dense', 'two_stage', 'detr', 'other_detector', 'segmentor',
         'depth')


@dataclass(frozen=True)
class Level:
    """One feature level: channels and stride (input size / map size)."""
    channels: int
    stride: Tuple[int, int]


@dataclass(frozen=True)
class DenseHeadFacts:
    """A dense head (``bbox_head`` or ``rpn_head``).

    Attributes:
        path: its module path in the model.
        type: its class name.
        family: the head-view family (``'GFLHead'``, ``'ATSSHead'``,
            ``'FCOSHead'``, ``'AnchorHead'``), or None when no view reads it.
        layout: what must match prior by prior (family, strides, priors
            per location, class channels, reg_max...); None without view.
        in_channels: channels it reads from the neck.
        feat_channels: width of its stacked convs.
        stacked_convs: number of stacked convs.
        sigmoid: whether it scores classes with per-class sigmoids.
        cross_head: whether CrossKD can run the rest of it.
    """
    path: str
    type: str
    family: Optional[str]
    layout: Optional[Dict[str, Any]]
    in_channels: Optional[int]
    feat_channels: Optional[int]
    stacked_convs: Optional[int]
    sigmoid: bool
    cross_head: bool


@dataclass(frozen=True)
class RoIHeadFacts:
    """The R-CNN head of a two-stage detector.

    Attributes:
        type: the RoI head's class name.
        box_head: its box head's class name (or a list's description).
        num_classes: the box head's classes (None when not one head).
        coder: the box coder's settings (type, means, stds).
        problem: why the R-CNN terms cannot read it, or None.
    """
    type: str
    box_head: str
    num_classes: Optional[int]
    coder: Optional[Dict[str, Any]]
    problem: Optional[str]


@dataclass(frozen=True)
class DecodeHeadFacts:
    """A segmentor's decode head.

    Attributes:
        type: its class name.
        logits_path: the module giving the class logits
            (``'decode_head.conv_seg'``), or None.
        classes: output channels of the logits (None without them).
    """
    type: str
    logits_path: Optional[str]
    classes: Optional[int]


@dataclass(frozen=True)
class ModelFacts:
    """Everything the recipe rules read from one model.

    Attributes:
        task: ``'det'`` (mmdet) or ``'seg'`` (mmseg, depth included).
        kind: one of :data:`KINDS`.
        arch: the model's class name (``'GFL'``, ``'FasterRCNN'``...).
        place: the module a neck term reads (``'neck'``, or
            ``'backbone'`` without a neck), or None.
        levels: the levels ``place`` gives on the probe image.
        dense_head: the one-stage head (``bbox_head``), if any.
        rpn_head: a two-stage detector's RPN, if any.
        roi_head: a two-stage detector's R-CNN head, if any.
        decode_head: a segmentor's decode head, if any.
        notes: what could not be read (e.g. the probe failed).
    """
    task: str
    kind: str
    arch: str
    place: Optional[str] = None
    levels: Tuple[Level, ...] = ()
    dense_head: Optional[DenseHeadFacts] = None
    rpn_head: Optional[DenseHeadFacts] = None
    roi_head: Optional[RoIHeadFacts] = None
    decode_head: Optional[DecodeHeadFacts] = None
    notes: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def strides(self) -> Tuple[Tuple[int, int], ...]:
        return tuple(level.stride for level in self.levels)

    @property
    def widths(self) -> Tuple[int, ...]:
        return tuple(level.channels for level in self.levels)

    def summary(self) -> str:
        """One line for the config's header, e.g. ``GFL (dense, GFLHead
        head 64 wide x 2 convs), neck 3 levels of 64 channels at strides
        8/16/32``."""
        parts = [f'{self.arch} ({self.kind}']
        if self.dense_head is not None:
            head = self.dense_head
            parts.append(f', {head.type} {head.feat_channels} wide x '
                         f'{head.stacked_convs} convs')
        if self.roi_head is not None:
            parts.append(f', {self.roi_head.type}/{self.roi_head.box_head}')
        if self.decode_head is not None:
            parts.append(f', {self.decode_head.type}, '
                         f'{self.decode_head.classes} classes')
        parts.append(')')
        if self.levels:
            widths = sorted(set(self.widths))
            parts.append(
                f', {self.place} {len(self.levels)} level(s) of '
                f'{"/".join(map(str, widths))} channels at strides '
                f'{"/".join(str(s[0]) for s in self.strides)}')
        return ''.join(parts)


def read_dense_head(head: nn.Module, path: str) -> DenseHeadFacts:
    """The facts of a dense head (any head: unsupported ones get no
    family or layout)."""
    try:
        view = view_for(head, path)
    except TypeError:
        view = None
    convs = getattr(head, 'cls_convs', None)
    return DenseHeadFacts(
        path=path,
        type=type(head).__name__,
        family=view.family if view is not None else None,
        layout=view.layout(head) if view is not None else None,
        in_channels=getattr(head, 'in_channels', None),
        feat_channels=getattr(head, 'feat_channels', None),
        stacked_convs=len(convs) if isinstance(convs, nn.ModuleList)
        else None,
        sigmoid=bool(getattr(head, 'use_sigmoid_cls', False)),
        cross_head=view is not None and view.supports_cross_head(head))


def read_roi_head(roi_head: nn.Module) -> RoIHeadFacts:
    """The facts of an R-CNN head, with why the R-CNN terms (Chen 2017)
    cannot read it when they cannot (the checks of
    :class:`~mmkd.losses.roi_head_term.RoIHeadTerm`)."""
    from mmdet.models.roi_heads.bbox_heads import BBoxHead

    from ..heads.roi import coder_settings, uses_sigmoid
    head = getattr(roi_head, 'bbox_head', None)
    if isinstance(head, nn.ModuleList):
        return RoIHeadFacts(
            type(roi_head).__name__, f'{len(head)} cascade box heads', None,
            None, f'{type(roi_head).__name__} has {len(head)} cascade box '
            'heads; the R-CNN terms read one BBoxHead')
    if not isinstance(head, BBoxHead) or \
            not callable(getattr(roi_head, '_bbox_forward', None)):
        return RoIHeadFacts(type(roi_head).__name__, type(head).__name__,
                            None, None, 'no single BBoxHead with '
                            '_bbox_forward (StandardRoIHead has one)')
    problem = None
    if getattr(head, 'custom_cls_channels', False):
        problem = 'its loss_cls has custom class channels'
    elif uses_sigmoid(head):
        problem = 'its box head classifies with sigmoids (use_sigmoid=True)'
    return RoIHeadFacts(type(roi_head).__name__, type(head).__name__,
                        head.num_classes, coder_settings(head.bbox_coder),
                        problem)


def read_decode_head(model: nn.Module) -> Optional[DecodeHeadFacts]:
    head = getattr(model, 'decode_head', None)
    if head is None:
        return None
    conv = getattr(head, 'conv_seg', None)
    if not isinstance(conv, nn.Conv2d):
        return DecodeHeadFacts(type(head).__name__, None, None)
    return DecodeHeadFacts(type(head).__name__, 'decode_head.conv_seg',
                           conv.out_channels)


def probe_levels(model: nn.Module, place: str,
                 size: Tuple[int, int]) -> Tuple[Level, ...]:
    """The levels the model's ``extract_feat`` gives on a zero image of
    ``size`` (eval mode, no grad; the training mode is restored)."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            feats = model.extract_feat(torch.zeros(1, 3, *size))
    finally:
        model.train(training)
    if isinstance(feats, torch.Tensor):
        feats = (feats, )
    levels = []
    for feat in feats:
        if not isinstance(feat, torch.Tensor) or feat.dim() != 4:
            continue
        h, w = feat.shape[-2:]
        levels.append(Level(int(feat.shape[1]),
                            (round(size[1] / w), round(size[0] / h))))
    return tuple(levels)


def _detector_kind(model: nn.Module) -> str:
    from mmdet.models.detectors import (DetectionTransformer,
                                        SingleStageDetector,
                                        TwoStageDetector)
    if isinstance(model, DetectionTransformer):
        return 'detr'
    if isinstance(model, TwoStageDetector):
        return 'two_stage'
    if isinstance(model, SingleStageDetector) and \
            getattr(model, 'bbox_head', None) is not None:
        return 'dense'
    return 'other_detector'


def read_model(model: nn.Module,
               probe_size: Tuple[int, int] = (256, 256)) -> ModelFacts:
    """The :class:`ModelFacts` of a built detector or segmentor.

    Args:
        model: an mmdet detector or mmseg segmentor (weights do not
            matter: nothing is read from them).
        probe_size: (H, W) of the zero image the feature levels are
            measured on; a multiple of the largest stride.

    Raises:
        TypeError: ``model`` is neither a detector nor a segmentor.
    """
    from ..utils.model_kind import is_detector, is_segmentor
    arch = type(model).__name__
    notes = []
    if is_detector(model):
        task, kind = 'det', _detector_kind(model)
    elif is_segmentor(model):
        from mmseg.models.segmentors import DepthEstimator
        task = 'seg'
        kind = 'depth' if isinstance(model, DepthEstimator) else 'segmentor'
    else:
        raise TypeError(
            f'The recipe reads mmdet detectors and mmseg segmentors; got a '
            f'{arch}. Give the config of a detector or a segmentor.')
    place = 'neck' if getattr(model, 'neck', None) is not None \
        else 'backbone'
    try:
        levels = probe_levels(model, place, probe_size)
    except Exception as err:  # a backbone needing image metas, ...
        levels = ()
        notes.append(f'{place} levels not measured ({type(err).__name__}: '
                     f'{err})')
    dense = rpn = roi = None
    if task == 'det':
        head = getattr(model, 'bbox_head', None)
        if kind == 'dense':
            dense = read_dense_head(head, 'bbox_head')
        if getattr(model, 'rpn_head', None) is not None:
            rpn = read_dense_head(model.rpn_head, 'rpn_head')
        if kind == 'two_stage':
            roi = read_roi_head(model.roi_head)
    return ModelFacts(
        task=task, kind=kind, arch=arch, place=place, levels=levels,
        dense_head=dense, rpn_head=rpn, roi_head=roi,
        decode_head=read_decode_head(model) if task == 'seg' else None,
        notes=tuple(notes))
