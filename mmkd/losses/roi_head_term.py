"""The base class of R-CNN head terms: the teacher's RoI head scores the
student's sampled RoIs (Chen et al., NeurIPS 2017); see
:mod:`mmkd.heads.roi` for what is read and how."""
from typing import Any, List, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..heads.roi import (LOSS_AND_TARGET, RoIPredictions, class_deltas,
                         coder_settings, uses_sigmoid)
from ..heads.views import bind_call
from ..recorders import MethodCalls, require_module
from ..slots import ModelSlot, slot_autocast
from .base import DistillTerm, as_levels, as_method_calls


class RoIHeadTerm(DistillTerm):
    """A term computed from both models' R-CNN outputs on the student's RoIs.

    Reads the student ``roi_head``'s ``bbox_head.loss_and_target`` call of
    the step (its sampled RoIs, outputs and targets) and the teacher's
    features at ``teacher_features`` (``'neck'``: what its RoI extractor
    pools from), then runs the teacher's ``_bbox_forward`` on the same RoIs
    under ``no_grad`` (see :mod:`mmkd.heads.roi`). At build time both box
    heads must classify with a softmax and agree on the classes and the
    box coder, so that scores and deltas compare like with like.
    Subclasses implement :meth:`loss`.

    Args:
        roi_head: path of the student's RoI head. Default ``'roi_head'``.
        teacher_roi_head: the teacher's; defaults to ``roi_head``.
        teacher_features: the teacher module whose output its RoI head
            pools from. Default ``'neck'``.
        loss_weight: the loss is multiplied by it.
        warmup_iters: the term is off for the first N iterations.
    """

    #: one teacher's RoI head scores the RoIs
    teacher_ensembles = False

    def __init__(self,
                 roi_head: str = 'roi_head',
                 teacher_roi_head: Optional[str] = None,
                 teacher_features: str = 'neck',
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        paths = (roi_head, teacher_roi_head or roi_head, teacher_features)
        if not all(isinstance(path, str) and path for path in paths):
            raise TypeError(
                'roi_head, teacher_roi_head and teacher_features are module '
                f'paths such as "roi_head" and "neck"; got {paths!r}.')
        super().__init__(
            student=dict(path=roi_head, record='calls',
                         methods=(LOSS_AND_TARGET, )),
            teacher=teacher_features,
            loss_weight=loss_weight, warmup_iters=warmup_iters)
        self.teacher_roi_head_path = teacher_roi_head or roi_head
        self.teacher_autocast = False
        object.__setattr__(self, 'teacher', None)

    # -- building -----------------------------------------------------------
    def bind_models(self, student: nn.Module,
                    teachers: Sequence[ModelSlot]) -> None:
        """Check both RoI heads; keep the teacher (hidden from
        ``state_dict``; the whole model, so that the distiller's deep
        copies share it) and its autocast setting."""
        teacher = self.single_teacher(teachers)
        if teacher.inputs.rescaled:
            raise ValueError(
                f'Term {self.name!r} ({type(self).__name__}) lets the '
                f'teacher score the student\'s RoIs, but {teacher} sees '
                f'the images rescaled by {teacher.inputs.scale}; read a '
                'teacher at the student\'s resolution.')
        for side, model, path in (
                ('student', student, self.student_spec.path),
                ('teacher', teacher.module, self.teacher_roi_head_path)):
            self._check_roi_head(require_module(
                dict(model.named_modules()), path, side, self.name), side)
        object.__setattr__(self, 'teacher', teacher.module)
        self.teacher_autocast = teacher.autocast

    @property
    def teacher_roi_head(self) -> nn.Module:
        """The teacher's RoI head (after :meth:`bind_models`)."""
        if self.teacher is None:
            raise RuntimeError(
                f'Term {self.name!r} ({type(self).__name__}) runs the '
                'teacher\'s RoI head: build it inside mmkd.Distiller, which '
                'binds the teacher.')
        return self.teacher.get_submodule(self.teacher_roi_head_path)

    def _check_roi_head(self, roi_head: nn.Module, side: str) -> None:
        head = getattr(roi_head, 'bbox_head', None)
        if not isinstance(head, BBoxHead) or \
                not callable(getattr(roi_head, '_bbox_forward', None)):
            raise TypeError(
                f'Term {self.name!r} ({type(self).__name__}): the {side} '
                f'RoI head ({type(roi_head).__name__}) needs one BBoxHead '
                'as bbox_head and a _bbox_forward(x, rois) method, as '
                'StandardRoIHead has; got bbox_head '
                f'{type(head).__name__}. Cascade heads (a list of box '
                'heads) are not supported.')
        if getattr(head, 'custom_cls_channels', False):
            raise TypeError(
                f'Term {self.name!r}: the {side} box head\'s loss_cls '
                f'({type(head.loss_cls).__name__}) has custom class '
                'channels; the term compares plain class logits.')
        if uses_sigmoid(head):
            raise TypeError(
                f'Term {self.name!r}: the {side} box head\'s loss_cls has '
                'use_sigmoid=True; its C + 1 outputs then score the '
                'background as one more class, which the background '
                'weighting of the R-CNN terms cannot tell apart. Use a '
                'softmax loss_cls (CrossEntropyLoss, use_sigmoid=False), '
                'as mmdet\'s R-CNN configs do.')

    def parse_record(self, value: Any, side: str) -> Any:
        if side == 'teacher':
            return as_levels(value, side, self.name)
        return as_method_calls(value, side, self.name)

    def setup(self, student_calls: MethodCalls, teacher_levels: List[Tensor],
              student_model: nn.Module) -> None:
        """Check the two box heads compare like with like."""
        call = self._student_call(student_calls)
        student, teacher = call.owner, self.teacher_roi_head.bbox_head
        mine = dict(num_classes=student.num_classes,
                    bbox_coder=coder_settings(student.bbox_coder))
        theirs = dict(num_classes=teacher.num_classes,
                      bbox_coder=coder_settings(teacher.bbox_coder))
        diff = [f'{key}: student {mine[key]!r}, teacher {theirs[key]!r}'
                for key in mine if mine[key] != theirs[key]]
        if diff:
            raise ValueError(
                f'Term {self.name!r}: the teacher\'s R-CNN box head does not '
                'score RoIs like the student\'s, so their outputs cannot be '
                f'compared; differs: {"; ".join(diff)}.')

    # -- collecting -----------------------------------------------------------
    def _student_call(self, calls: MethodCalls):
        try:
            return calls.last(LOSS_AND_TARGET)
        except KeyError as err:
            raise RuntimeError(
                f'Term {self.name!r}: the student RoI head '
                f'{self.student_spec.path!r} did not call '
                f'{LOSS_AND_TARGET}() in its loss: {err}') from err

    def collect(self, student_calls: MethodCalls,
                teacher_levels: Sequence[Tensor]) -> RoIPredictions:
        """Both models' outputs on the student's RoIs, computed once a step
        for every term reading them (kept with the student's record)."""
        call = self._student_call(student_calls)
        key = ('roi_predictions', self.teacher_roi_head_path,
               id(teacher_levels[0]))
        if key not in call.cache:
            call.cache[key] = self._collect(call, teacher_levels)
        return call.cache[key]

    def _collect(self, call, teacher_levels: Sequence[Tensor]
                 ) -> RoIPredictions:
        args = bind_call(call)
        if args.get('concat', True) is False:
            raise RuntimeError(
                f'Term {self.name!r}: the student RoI head computed its box '
                'targets per image (concat=False); the term reads the '
                'batch\'s concatenated targets. Call '
                'bbox_head.loss_and_target with concat=True (the default '
                'of StandardRoIHead.bbox_loss) in your RoI head.')
        head = call.owner
        rois, cls_s, reg_s = args['rois'], args['cls_score'], \
            args['bbox_pred']
        labels, label_weights, bbox_targets = call.result['bbox_targets'][:3]
        with torch.no_grad(), slot_autocast(rois.device.type,
                                            self.teacher_autocast):
            out = self.teacher_roi_head._bbox_forward(
                tuple(teacher_levels), rois.detach())
        cls_t, reg_t = out['cls_score'], out['bbox_pred']
        if cls_t.shape != cls_s.shape:
            raise ValueError(
                f'Term {self.name!r}: the teacher scores the {len(rois)} '
                f'RoIs as {tuple(cls_t.shape)}, the student as '
                f'{tuple(cls_s.shape)}.')
        num_classes = head.num_classes
        pos = (labels >= 0) & (labels < num_classes)
        return RoIPredictions(
            rois=rois,
            cls_student=cls_s,
            cls_teacher=cls_t.detach(),
            reg_student=class_deltas(reg_s, labels, num_classes),
            reg_teacher=class_deltas(reg_t.detach(), labels, num_classes),
            labels=labels,
            label_weights=label_weights,
            target_deltas=self._target_deltas(head, rois, bbox_targets,
                                              pos),
            num_classes=num_classes,
            student_head=head,
            teacher_head=self.teacher_roi_head.bbox_head)

    @staticmethod
    def _target_deltas(head: nn.Module, rois: Tensor, bbox_targets: Tensor,
                       pos: Tensor) -> Tensor:
        """The targets in the coder's encoding: as stored, or (heads with
        ``reg_decoded_bbox``, which store gt boxes) encoded; negatives'
        boxes are replaced by their RoI so the encoding stays finite."""
        if not head.reg_decoded_bbox:
            return bbox_targets
        boxes = torch.where(pos[:, None], bbox_targets,
                            rois[:, 1:].to(bbox_targets.dtype))
        return head.bbox_coder.encode(rois[:, 1:], boxes)

    def compute(self, student_calls: MethodCalls,
                teacher_levels: List[Tensor],
                data_samples: Sequence[BaseDataElement]) -> Tensor:
        return self.loss(self.collect(student_calls, teacher_levels))

    def loss(self, preds: RoIPredictions) -> Tensor:
        """The unweighted loss from both models' outputs on the RoIs."""
        raise NotImplementedError
