"""Head-level terms inside the distiller: build, train step, EMA copy."""
import copy

import pytest
import torch
from conftest import save_teacher
from mmengine.config import ConfigDict
from tiny_heads import (FAMILIES, det_batch, tiny_faster_rcnn, tiny_gfl,
                        tiny_retina)

from mmkd import Distiller
from mmkd.recorders import RecordedMethod

TERMS = dict(
    box=dict(type='TeacherBoundedRegression'),
    soft=dict(type='BackgroundWeightedSoftTargets'),
    kd=dict(type='HeadClassificationKD', region='valid'),
    bc=dict(type='BinaryClassificationKD'),
    iou=dict(type='IoULocalizationKD'))


def make_distiller(tmp_path, student, teacher, distill=None):
    ckpt = save_teacher(teacher, str(tmp_path / 'teacher.pth'), 'mmdet')
    return Distiller(
        student=student,
        teacher=dict(config=dict(default_scope='mmdet', model=teacher),
                     checkpoint=ckpt),
        distill=distill or copy.deepcopy(TERMS), probe_size=(64, 96))


def _total(losses):
    return sum(v if isinstance(v, torch.Tensor) else sum(v)
               for v in losses.values())


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_loss_and_backward_per_head_family(tmp_path, det_scope, family):
    make = FAMILIES[family]
    distill = copy.deepcopy(TERMS)
    if family == 'gfl':
        distill.update(
            ld=dict(type='LocalizationDistillation'),
            vlr=dict(type='LocalizationDistillation', region='valuable'))
    model = make_distiller(tmp_path, make(), make(32, 16), distill).train()
    teacher_calls = []
    model.teacher.bbox_head.loss_by_feat = \
        lambda *a, **k: teacher_calls.append(1)
    losses = model.loss(*det_batch())
    for name in distill:
        value = losses[f'loss_distill_{name}']
        assert value.dim() == 0 and torch.isfinite(value)
    assert losses['loss_distill_box'] > 0
    assert losses['loss_distill_soft'] > 0
    assert losses['loss_distill_bc'] > 0 and losses['loss_distill_iou'] > 0
    if family == 'gfl':
        assert losses['loss_distill_ld'] > 0
        assert losses['loss_distill_vlr'] > 0
    _total(losses).backward()
    head = model.student.bbox_head
    assert all(p.grad is not None for p in head.parameters()
               if p.requires_grad)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert teacher_calls == []  # the teacher computes no loss
    # nothing is kept between steps
    assert model.student_recorder.call_counts() == \
        {spec: 0 for spec in model.student_recorder.specs}


def test_distill_gradient_reaches_the_student_head_only_through_terms(
        tmp_path, det_scope):
    model = make_distiller(tmp_path, tiny_gfl(), tiny_gfl(32, 16), dict(
        ld=dict(type='LocalizationDistillation'))).train()
    losses = model.loss(*det_batch())
    reg = model.student.bbox_head.gfl_reg.weight
    grad, = torch.autograd.grad(losses['loss_distill_ld'], reg)
    assert grad.abs().sum() > 0
    cls = model.student.bbox_head.gfl_cls.weight
    # LD's weights (class scores) are detached
    assert torch.autograd.grad(losses['loss_distill_ld'], cls,
                               allow_unused=True)[0] is None


def test_ema_deep_copy_records_its_own_head(tmp_path, det_scope):
    model = make_distiller(tmp_path, tiny_gfl(), tiny_gfl(32, 16), dict(
        ld=dict(type='LocalizationDistillation'))).train()
    ema = copy.deepcopy(model)
    head, ema_head = model.student.bbox_head, ema.student.bbox_head
    assert ema_head is not head
    for name in ('forward', 'get_targets'):
        wrapper = ema_head.__dict__[name]
        assert isinstance(wrapper, RecordedMethod)
        assert wrapper.owner is ema_head
        assert head.__dict__[name].owner is head
    assert ema.teacher is model.teacher
    losses = ema.loss(*det_batch())
    losses['loss_distill_ld'].backward()
    assert ema_head.gfl_reg.weight.grad.abs().sum() > 0
    assert head.gfl_reg.weight.grad is None
    # the original still trains after its copy ran
    losses = model.loss(*det_batch())
    losses['loss_distill_ld'].backward()
    assert head.gfl_reg.weight.grad.abs().sum() > 0


def test_predict_goes_through_the_recorded_forward(tmp_path, det_scope):
    # mmdet reads test_cfg by attribute, as from a config file
    model = make_distiller(tmp_path, ConfigDict(tiny_retina()),
                           tiny_retina(32, 16))
    model.eval()
    inputs, samples = det_batch()
    with torch.no_grad():
        results = model(inputs, samples, mode='predict')
    assert len(results) == 2 and 'pred_instances' in results[0]
    assert all(n == 0 for n in model.student_recorder.call_counts().values())


def test_build_time_errors(tmp_path, det_scope):
    with pytest.raises(ValueError, match='reg_max: student 8, teacher 16'):
        make_distiller(tmp_path, tiny_gfl(), tiny_gfl(32, 16, reg_max=16),
                       dict(ld=dict(type='LocalizationDistillation')))
    with pytest.raises(TypeError, match='distils GFLHead heads'):
        make_distiller(tmp_path, tiny_retina(), tiny_retina(32, 16),
                       dict(ld=dict(type='LocalizationDistillation')))
    with pytest.raises(AttributeError, match='no method .get_targets.'):
        make_distiller(tmp_path, tiny_retina(), tiny_retina(32, 16),
                       dict(box=dict(type='TeacherBoundedRegression',
                                     head='neck')))
    with pytest.raises(KeyError, match='bbox_hed'):
        make_distiller(tmp_path, tiny_retina(), tiny_retina(32, 16),
                       dict(box=dict(type='TeacherBoundedRegression',
                                     head='bbox_hed')))


def test_softmax_heads(tmp_path, det_scope):
    """A softmax RetinaNet (background last): soft targets weight the
    background class; per-class sigmoid terms refuse it at build time."""
    def softmax_retina(width=16, base=8):
        cfg = tiny_retina(width, base)
        cfg['bbox_head']['loss_cls'] = dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
        return cfg

    model = make_distiller(
        tmp_path, softmax_retina(), softmax_retina(32, 16),
        dict(soft=dict(type='BackgroundWeightedSoftTargets'),
             box=dict(type='TeacherBoundedRegression')))
    head = model.student.bbox_head
    assert head.cls_out_channels == head.num_classes + 1
    losses = model.train().loss(*det_batch())
    assert losses['loss_distill_soft'] > 0
    with pytest.raises(TypeError, match='softmax'):
        make_distiller(tmp_path, softmax_retina(), softmax_retina(32, 16),
                       dict(bc=dict(type='BinaryClassificationKD')))


def test_two_stage_rpn_head(tmp_path, det_scope):
    """The RPN of a two-stage detector is read at ``rpn_head``; the
    teacher stops after it (its R-CNN head never runs)."""
    model = make_distiller(
        tmp_path, tiny_faster_rcnn(), tiny_faster_rcnn(32, 16),
        dict(soft=dict(type='BackgroundWeightedSoftTargets',
                       head='rpn_head'),
             box=dict(type='TeacherBoundedRegression', head='rpn_head')))
    roi_calls = []
    model.teacher.roi_head.forward = lambda *a, **k: roi_calls.append(1)
    losses = model.train().loss(*det_batch())
    assert losses['loss_distill_soft'] > 0
    assert torch.isfinite(losses['loss_distill_box'])
    _total(losses).backward()
    assert model.student.rpn_head.rpn_cls.weight.grad.abs().sum() > 0
    assert roi_calls == []


def test_terms_on_the_same_head_share_one_collection(tmp_path, det_scope):
    model = make_distiller(tmp_path, tiny_gfl(), tiny_gfl(32, 16), dict(
        ld=dict(type='LocalizationDistillation'),
        kd=dict(type='HeadClassificationKD'))).train()
    seen = []
    for term in model.distill_terms.values():
        term.loss = lambda preds, _seen=seen: _seen.append(preds) or \
            preds.cls_student.sum()
    model.loss(*det_batch())
    assert len(seen) == 2 and seen[0] is seen[1]
    model.loss(*det_batch())  # a new step collects anew
    assert len(seen) == 4 and seen[2] is not seen[0]
