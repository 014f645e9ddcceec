"""Two-stage detectors: RPN terms through the dense-head view, and R-CNN
terms whose teacher scores the student's own sampled RoIs.

Models are mmdet's real Faster/Mask R-CNN configs shrunk to a ResNet-18 at
8 (student) or 16 (teacher) base channels with 16/32-channel FPN and
heads, on 128x128 probe batches.
"""
import copy
from unittest import mock

import pytest
import torch
from conftest import save_teacher
from mmengine.config import Config, ConfigDict

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher import resolve_config_path
from mmkd.losses import RoIHeadTerm
from mmkd.losses import (RoIBackgroundWeightedSoftTargets,
                         RoITeacherBoundedRegression)

FASTER = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
MASK = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
CASCADE = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'
SIZE = (128, 128)

RPN_AND_RCNN = dict(
    rpn_soft=dict(type='BackgroundWeightedSoftTargets', head='rpn_head'),
    rpn_box=dict(type='TeacherBoundedRegression', head='rpn_head'),
    rcnn_soft=dict(type='RoIBackgroundWeightedSoftTargets'),
    rcnn_box=dict(type='RoITeacherBoundedRegression'))


def tiny(config: str = FASTER, base: int = 8, width: int = 16,
         **extra) -> ConfigDict:
    """The real config's model, shrunk (``extra``: more dotted keys)."""
    cfg = Config.fromfile(resolve_config_path(config))
    keys = {
        'backbone.depth': 18, 'backbone.base_channels': base,
        'backbone.init_cfg': None,
        'neck.in_channels': [base, 2 * base, 4 * base, 8 * base],
        'neck.out_channels': width, 'rpn_head.in_channels': width,
        'rpn_head.feat_channels': width,
        'roi_head.bbox_roi_extractor.out_channels': width,
        'roi_head.bbox_head.in_channels': width,
        'roi_head.bbox_head.fc_out_channels': 2 * width,
        'train_cfg.rcnn.sampler.num': 32}
    if 'cascade' in config:  # a list of box heads: set by ``extra``
        keys = {k: v for k, v in keys.items()
                if not k.startswith(('roi_head.bbox_head', 'train_cfg'))}
    if 'mask' in config:
        keys.update({'roi_head.mask_roi_extractor.out_channels': width,
                     'roi_head.mask_head.in_channels': width,
                     'roi_head.mask_head.conv_out_channels': width,
                     'roi_head.mask_head.num_convs': 1})
    keys.update(extra)
    cfg.merge_from_dict({f'model.{k}': v for k, v in keys.items()})
    return cfg.model


def distiller(tmp_path, distill, student=None, teacher=None) -> Distiller:
    teacher = teacher if teacher is not None else tiny(base=16, width=32)
    ckpt = save_teacher(teacher, str(tmp_path / 'teacher.pth'), 'mmdet')
    torch.manual_seed(1)
    return Distiller(student=student if student is not None else tiny(),
                     teacher=dict(config=teacher, checkpoint=ckpt),
                     distill=distill, probe_size=SIZE)


def batch(model, seed: int = 0):
    torch.manual_seed(seed)
    inputs, samples = make_probe_batch(model.student, SIZE)
    return torch.randn_like(inputs) * 50, samples


def dense_predictions(model: Distiller, term):
    """A dense-head term's aligned predictions for one student loss pass
    on a probe batch (the recorders cleared after)."""
    inputs, samples = batch(model)
    model.run_teachers(inputs, copy.deepcopy(samples))
    model.student_recorder.active = True
    model.student.loss(inputs, samples)
    model.student_recorder.active = False
    preds = term.collect(model.student_recorder.get(term.student_spec),
                         model.teacher_recorder.get(term.teacher_spec))
    model.student_recorder.clear()
    model.teacher_recorder.clear()
    return preds


def test_teacher_scores_the_students_sampled_rois(tmp_path, det_scope):
    model = distiller(tmp_path, RPN_AND_RCNN)
    seen = {}

    def keep(side):
        def hook(module, args):
            seen[side] = args[1].detach().clone()  # (x, rois)
        return hook

    handles = [
        model.student.roi_head.bbox_roi_extractor.register_forward_pre_hook(
            keep('student')),
        model.teacher.roi_head.bbox_roi_extractor.register_forward_pre_hook(
            keep('teacher'))]
    teacher_rpn = model.teacher.rpn_head
    try:
        # on the teacher's instance only (the student's RPN uses both)
        with mock.patch.object(teacher_rpn, 'loss_by_feat',
                               wraps=teacher_rpn.loss_by_feat) as loss, \
                mock.patch.object(teacher_rpn, 'predict_by_feat',
                                  wraps=teacher_rpn.predict_by_feat
                                  ) as proposals:
            losses = model.loss(*batch(model))
    finally:
        for handle in handles:
            handle.remove()
    # the same boxes, in the same order; the teacher computed no RPN loss
    # and no proposals of its own (it stopped after its RPN forward)
    assert seen['teacher'].shape[0] == 2 * 32
    assert torch.equal(seen['teacher'], seen['student'])
    assert not loss.called and not proposals.called
    assert all(torch.isfinite(losses[f'loss_distill_{name}'])
               for name in RPN_AND_RCNN)
    assert losses['loss_distill_rcnn_soft'] > 0


def test_same_weights_give_the_students_own_outputs(tmp_path, det_scope):
    """A teacher that is the student (same weights, both in eval mode)
    scores the RoIs exactly as the student does."""
    model = distiller(tmp_path, dict(
        rcnn=dict(type='RoIBackgroundWeightedSoftTargets')),
        teacher=tiny())
    model.student.load_state_dict(model.teacher.state_dict())
    model.student.eval()
    term = model.distill_terms['rcnn']
    inputs, samples = batch(model)
    model.run_teachers(inputs, copy.deepcopy(samples))
    model.student_recorder.active = True
    model.student.loss(inputs, samples)
    model.student_recorder.active = False
    preds = term.collect(
        model.student_recorder.get(term.student_spec),
        term.parse_record(model.teacher_recorder.get(term.teacher_spec),
                          'teacher'))
    model.student_recorder.clear()
    model.teacher_recorder.clear()
    torch.testing.assert_close(preds.cls_teacher, preds.cls_student)
    torch.testing.assert_close(preds.reg_teacher, preds.reg_student)
    assert not preds.cls_teacher.requires_grad
    assert preds.cls_student.requires_grad
    assert preds.pos.any() and (~preds.pos).any()


def test_terms_share_one_teacher_pass_a_step(tmp_path, det_scope):
    model = distiller(tmp_path, RPN_AND_RCNN)
    head = model.teacher.roi_head
    with mock.patch.object(head, '_bbox_forward',
                           wraps=head._bbox_forward) as forward:
        model.loss(*batch(model))
    assert forward.call_count == 1  # two R-CNN terms, one teacher pass


def test_gradients_reach_the_students_rcnn_head_only(tmp_path, det_scope):
    # a teacher equal to the student: errors tie, so with m > 0 the bound
    # never switches the term off
    model = distiller(tmp_path, dict(
        rcnn_box=dict(type='RoITeacherBoundedRegression', margin=0.2,
                      loss_weight=1.0)), teacher=tiny())
    model.student.load_state_dict(model.teacher.state_dict())
    model.student.eval()
    losses = model.loss(*batch(model))
    assert losses['loss_distill_rcnn_box'] > 0
    losses['loss_distill_rcnn_box'].backward()
    head = model.student.roi_head.bbox_head
    assert head.fc_reg.weight.grad.abs().sum() > 0
    assert head.fc_cls.weight.grad is None or \
        head.fc_cls.weight.grad.abs().sum() == 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_rpn_terms_read_the_rpn_through_the_anchor_view(tmp_path,
                                                       det_scope):
    model = distiller(tmp_path, dict(
        rpn=dict(type='BackgroundWeightedSoftTargets', head='rpn_head')))
    term = model.distill_terms['rpn']
    assert term.view.family == 'AnchorHead'
    preds = dense_predictions(model, term)
    # one objectness logit per anchor, RPN labels: 0 object, 1 background
    anchors = sum(preds.level_sizes) * 2
    assert preds.cls_student.shape == preds.cls_teacher.shape == (anchors,
                                                                  1)
    assert preds.use_sigmoid and preds.num_classes == 1
    assert set(preds.labels.unique().tolist()) <= {0, 1}
    assert preds.pos.any()


def test_rpn_bounded_regression_is_normalised_as_the_rpn_box_loss(
        tmp_path, det_scope):
    """The RPN samples anchors (RandomSampler): its box loss divides by
    the sampled anchors, and so does the bounded term, not by the
    positives (which would weigh it ~sampled/positives times more)."""
    model = distiller(tmp_path, dict(
        rpn_box=dict(type='TeacherBoundedRegression', head='rpn_head',
                     margin=0.0)))
    term = model.distill_terms['rpn_box']
    preds = dense_predictions(model, term)
    sampled, positives = float(preds.avg_factor), int(preds.pos.sum())
    assert sampled > positives > 0
    pos = preds.select(preds.pos)
    target = pos.target_offsets()
    student_sq = ((pos.offsets('student') - target) ** 2).sum(-1)
    teacher_sq = ((pos.offsets('teacher') - target) ** 2).sum(-1)
    # m = 0: each positive counts while the student is not better
    expected = torch.where(student_sq > teacher_sq, student_sq,
                           torch.zeros_like(student_sq)).sum() / sampled
    assert expected > 0
    torch.testing.assert_close(term.loss(preds), expected)


def test_mask_rcnn_students_keep_their_mask_branch(tmp_path, det_scope):
    model = distiller(tmp_path, RPN_AND_RCNN, student=tiny(MASK),
                      teacher=tiny(MASK, base=16, width=32))
    inputs, samples = batch(model)
    torch.manual_seed(2)  # the samplers draw from the RNG
    alone = model.student.loss(inputs, copy.deepcopy(samples))
    torch.manual_seed(2)
    losses = model.loss(inputs, samples)
    # the student's own losses, mask branch included, are untouched
    for key in ('loss_mask', 'loss_cls', 'loss_bbox'):
        torch.testing.assert_close(losses[key], alone[key])
    assert torch.isfinite(losses['loss_mask']) and losses['loss_mask'] > 0
    for name in RPN_AND_RCNN:
        assert torch.isfinite(losses[f'loss_distill_{name}'])
    total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.student.roi_head.mask_head.conv_logits.weight.grad.abs(
    ).sum() > 0


def test_teacher_stays_hidden_and_shared_by_copies(tmp_path, det_scope):
    model = distiller(tmp_path, RPN_AND_RCNN)
    term = model.distill_terms['rcnn_soft']
    assert term.teacher is model.teacher
    assert not any('teacher' in key for key in model.state_dict())
    twin = copy.deepcopy(model)
    assert twin.distill_terms['rcnn_soft'].teacher_roi_head is \
        model.teacher.roi_head
    losses = twin.loss(*batch(twin))
    assert torch.isfinite(losses['loss_distill_rcnn_soft'])


def test_sigmoid_rcnn_classifiers_fail_at_build(tmp_path, det_scope):
    student = tiny(**{'roi_head.bbox_head.loss_cls.use_sigmoid': True})
    with pytest.raises(TypeError, match='use_sigmoid=False'):
        distiller(tmp_path, dict(rcnn=dict(
            type='RoIBackgroundWeightedSoftTargets')), student=student)


def test_heads_that_score_differently_fail_at_build(tmp_path, det_scope):
    teacher = tiny(base=16, width=32, **{
        'roi_head.bbox_head.num_classes': 20,
        'roi_head.bbox_head.bbox_coder.target_stds': [0.2] * 4})
    with pytest.raises(ValueError) as err:
        distiller(tmp_path, dict(rcnn=dict(
            type='RoIBackgroundWeightedSoftTargets')), teacher=teacher)
    message = str(err.value)
    assert "Term 'rcnn'" in message and 'num_classes: student 80, ' \
        'teacher 20' in message and "'stds': [0.2, 0.2, 0.2, 0.2]" in message


@pytest.mark.parametrize('side', ['student', 'teacher'])
def test_cascade_heads_fail_at_build(side, tmp_path, det_scope):
    widths = dict(student=(8, 16), teacher=(16, 32))
    models = {name: tiny(base=base, width=width) for name, (base, width)
              in widths.items()}
    base, width = widths[side]
    models[side] = tiny(CASCADE, base=base, width=width, **{
        f'roi_head.bbox_head.{i}.{k}': v for i in range(3)
        for k, v in dict(in_channels=width,
                         fc_out_channels=2 * width).items()},
        **{f'train_cfg.rcnn.{i}.sampler.num': 32 for i in range(3)})
    with pytest.raises(TypeError, match=f"Term 'rcnn'.* {side} RoI head "
                       r'\(CascadeRoIHead\).*Cascade heads .* not '
                       'supported'):
        distiller(tmp_path, dict(rcnn=dict(
            type='RoITeacherBoundedRegression')), **models)


def test_unknown_teacher_roi_head_names_the_nearest(tmp_path, det_scope):
    with pytest.raises(KeyError, match="roi_heads.*Nearest.*roi_head"):
        distiller(tmp_path, dict(rcnn=dict(
            type='RoITeacherBoundedRegression',
            teacher_roi_head='roi_heads')))


def test_term_outside_a_distiller_says_so():
    term = RoIBackgroundWeightedSoftTargets()
    assert isinstance(term, RoIHeadTerm)
    with pytest.raises(RuntimeError, match='inside mmkd.Distiller'):
        term.teacher_roi_head


@pytest.mark.parametrize('kwargs', [dict(mu=0), dict(mu=1.5),
                                    dict(background_weight=-1),
                                    dict(temperature=0),
                                    dict(roi_head='')])
def test_bad_soft_target_arguments(kwargs):
    with pytest.raises((ValueError, TypeError)):
        RoIBackgroundWeightedSoftTargets(**kwargs)


def test_bad_margin():
    with pytest.raises(ValueError, match='margin'):
        RoITeacherBoundedRegression(margin=-0.1)
