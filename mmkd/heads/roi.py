"""What R-CNN head terms read: both models' outputs on the student's RoIs.

A two-stage detector's second stage classifies and refines *sampled
proposals*, which differ between models and steps, so its outputs cannot
be compared position by position as a dense head's can. Chen et al.
(NeurIPS 2017) let the teacher's R-CNN head score the *student's* sampled
RoIs: the same boxes, pooled from the teacher's own features.

:class:`~mmkd.losses.roi_head_term.RoIHeadTerm` takes what the student
computed in its own loss from one method-call record, the student
``roi_head``'s ``bbox_head.loss_and_target`` call
(``StandardRoIHead.bbox_loss`` makes it once a step): the sampled RoIs,
the student's class scores and box deltas on them and their targets
(labels, label weights, encoded box targets). No second sampler run, no
head subclassing, the user's config unchanged. The teacher runs as deep as its features (``neck``); the term
then runs the teacher ``roi_head``'s ``_bbox_forward`` (RoI extractor,
shared head if any, box head) on those RoIs under ``no_grad`` — never the
teacher's RPN loss or any loss. Both sides' outputs are gathered in
:class:`RoIPredictions`, once a step for all terms reading them.

Supported: RoI heads whose ``bbox_head`` is one ``BBoxHead`` trained
through ``loss_and_target`` (``StandardRoIHead`` and its subclasses:
Faster, Mask R-CNN...); a cascade's list of box heads is an error at build.
"""
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

#: the student ``roi_head`` method recorded (a method of its submodule)
LOSS_AND_TARGET = 'bbox_head.loss_and_target'


@dataclass
class RoIPredictions:
    """Both models' R-CNN outputs on the student's sampled RoIs.

    Args:
        rois: (N, 5) ``(image index, x1, y1, x2, y2)`` sampled RoIs of the
            batch, in the student's sampling order.
        cls_student: (N, C + 1) student class logits (background last).
        cls_teacher: (N, C + 1) the teacher's on the same RoIs, detached.
        reg_student: (N, 4) the student's box deltas for each RoI's label
            (its only ones for class-agnostic heads; label 0's for
            background RoIs, which regression terms leave out).
        reg_teacher: (N, 4) the teacher's, the same way, detached.
        labels: (N,) the student's labels, ``num_classes`` for background.
        label_weights: (N,) classification weights (0: not counted).
        target_deltas: (N, 4) regression targets in the student's box
            coder's encoding (meaningful at positives).
        num_classes: foreground classes.
        student_head: the student's ``bbox_head`` (this step).
        teacher_head: the teacher's ``bbox_head``.
    """
    rois: Tensor
    cls_student: Tensor
    cls_teacher: Tensor
    reg_student: Tensor
    reg_teacher: Tensor
    labels: Tensor
    label_weights: Tensor
    target_deltas: Tensor
    num_classes: int
    student_head: nn.Module
    teacher_head: nn.Module

    @property
    def pos(self) -> Tensor:
        """(N,) bool: RoIs the student assigned to an object."""
        return (self.labels >= 0) & (self.labels < self.num_classes)

    @property
    def valid(self) -> Tensor:
        """(N,) bool: RoIs the classification loss counts."""
        return self.label_weights > 0

    @property
    def num_rois(self) -> int:
        """The sampled RoIs: the normaliser of the head's own box loss."""
        return self.rois.shape[0]


def class_deltas(bbox_pred: Tensor, labels: Tensor,
                 num_classes: int) -> Tensor:
    """(N, 4) each row's deltas for its label from (N, 4) class-agnostic
    or (N, 4 * num_classes) per-class predictions (background rows take
    class 0's)."""
    if bbox_pred.shape[1] == 4:
        return bbox_pred
    index = torch.where(labels < num_classes, labels, 0).long()
    rows = torch.arange(bbox_pred.shape[0], device=bbox_pred.device)
    return bbox_pred.reshape(-1, num_classes, 4)[rows, index]


def uses_sigmoid(head: nn.Module) -> bool:
    """Whether a box head classifies with per-class sigmoids."""
    return bool(getattr(head.loss_cls, 'use_sigmoid', False))


def coder_settings(coder: Any) -> dict:
    """The type and plain settings (means, stds, clips) of a box coder."""
    plain = (int, float, bool, str, tuple, list)
    return dict(type=type(coder).__name__,
                **{key: value for key, value in vars(coder).items()
                   if isinstance(value, plain)})
