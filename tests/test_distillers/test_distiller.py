import copy

import pytest
import torch
from conftest import save_teacher, tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch


def _det_distiller(ckpt, distill=None, **kwargs):
    distill = distill or dict(fpn=dict(
        type='FeatureImitation', student='neck', teacher='neck',
        mask=dict(type='FGFIMask')))
    return Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=ckpt),
        distill=distill, probe_size=(64, 64), **kwargs)


def _batch(model, size=(64, 64)):
    """Random images (zeros give all-zero features) with one gt box each."""
    inputs, samples = make_probe_batch(model.student, size)
    return torch.randn_like(inputs), samples


def test_teacher_is_frozen_hidden_and_stays_in_eval(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt)
    model.train()
    assert not any(m.training for m in model.teacher.modules())
    assert all(m.training for m in model.student.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    keys = model.state_dict().keys()
    assert not any(k.startswith('teacher') for k in keys)
    assert any(k.startswith('distill_terms.fpn.adaptors.0') for k in keys)
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}


def test_train_step_updates_student_and_adaptors_not_teacher(
        det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt).train()
    before = copy.deepcopy(model.teacher.state_dict())
    student_before = model.student.neck.lateral_convs[0].conv.weight.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, samples = _batch(model)
    losses = model.loss(inputs, samples)
    assert {'loss_cls', 'loss_bbox', 'loss_distill_fpn'} <= set(losses)
    total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                for v in losses.values())
    total.backward()
    adaptor = model.distill_terms.fpn.adaptors[0].conv.conv
    assert adaptor.weight.grad.abs().sum() > 0
    optimizer.step()
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(
        student_before, model.student.neck.lateral_convs[0].conv.weight)


def test_teacher_stops_after_the_neck(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt)
    calls = []
    model.teacher.bbox_head.register_forward_hook(
        lambda *args: calls.append(1))
    model.loss(*_batch(model))
    assert calls == []


def test_teacher_head_runs_when_a_term_reads_it(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt, distill=dict(
        cls=dict(type='FeatureImitation', student='bbox_head.retina_cls',
                 teacher='bbox_head.retina_cls', adaptor=None)))
    # the shared conv runs once per FPN level: three levels
    assert model.teacher_recorder.expected_calls[
        model.distill_terms.cls.teacher_spec] == 3
    losses = model.loss(*_batch(model))
    assert losses['loss_distill_cls'] > 0


def test_predict_goes_to_the_student(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt).eval()
    inputs, samples = _batch(model)
    with torch.no_grad():
        ours = model(inputs, samples, mode='tensor')
        plain = model.student(inputs, samples, mode='tensor')
    assert all(torch.equal(a, b) for a, b in zip(ours[0], plain[0]))


def test_student_initialisation_ignores_the_teacher(det_teacher_ckpt):
    """Same seed, same student weights, with or without distillation."""
    from mmengine.registry import MODELS
    torch.manual_seed(1)
    alone = MODELS.build(tiny_retinanet(8, 16))
    alone.init_weights()
    torch.manual_seed(1)
    model = _det_distiller(det_teacher_ckpt)
    model.student.init_weights()
    for (name, a), b in zip(alone.state_dict().items(),
                            model.student.state_dict().values()):
        assert torch.equal(a, b), name


def test_to_moves_and_casts_the_teacher(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt).to(torch.float64)
    assert next(model.teacher.parameters()).dtype == torch.float64


def test_missing_checkpoint_fails_before_building(det_scope, tmp_path):
    with pytest.raises(FileNotFoundError, match='teacher.checkpoint'):
        _det_distiller(str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match='checkpoint is required'):
        _det_distiller(None)


def test_mismatched_checkpoint_lists_keys(det_scope, tmp_path):
    ckpt = save_teacher(tiny_retinanet(8, 32), str(tmp_path / 'w.pth'),
                        'mmdet')
    sd = torch.load(ckpt, weights_only=True)
    sd['state_dict']['extra.weight'] = torch.zeros(1)
    del sd['state_dict']['neck.fpn_convs.0.conv.bias']
    torch.save(sd, ckpt)
    with pytest.raises(RuntimeError) as err:
        _det_distiller(ckpt)
    msg = str(err.value)
    assert 'missing keys (1): neck.fpn_convs.0.conv.bias' in msg
    assert 'unexpected keys (1): extra.weight' in msg
    assert 'shape mismatches' in msg  # base 8 backbone vs base 16 config


def test_unknown_path_names_term_and_nearest(det_teacher_ckpt):
    with pytest.raises(KeyError, match=r"'fpn'.*student has no module "
                       r"'neck.fpn_conv.0'.*neck.fpn_convs.0"):
        _det_distiller(det_teacher_ckpt, distill=dict(fpn=dict(
            type='FeatureImitation', student='neck.fpn_conv.0',
            teacher='neck')))


def test_unknown_term_argument_names_the_term(det_teacher_ckpt):
    with pytest.raises(TypeError, match="'fpn'.*lossweight"):
        _det_distiller(det_teacher_ckpt, distill=dict(fpn=dict(
            type='FeatureImitation', student='neck', teacher='neck',
            lossweight=1.0)))


def test_incompatible_levels_fail_at_build(det_teacher_ckpt):
    with pytest.raises(ValueError, match="'fpn'.*3 level.*1"):
        _det_distiller(det_teacher_ckpt, distill=dict(fpn=dict(
            type='FeatureImitation', student='neck',
            teacher='neck.fpn_convs.0')))


def test_warmup_follows_the_runner_iteration(det_teacher_ckpt):
    from mmengine.logging import MessageHub
    model = _det_distiller(det_teacher_ckpt, distill=dict(fpn=dict(
        type='FeatureImitation', student='neck', teacher='neck',
        warmup_iters=5)))
    batch = _batch(model)
    hub = MessageHub.get_instance('warmup-test')  # what the Runner updates
    hub.update_info('iter', 4)
    assert model.loss(*batch)['loss_distill_fpn'].item() == 0
    hub.update_info('iter', 5)  # e.g. after resuming at iteration 5
    assert model.loss(*batch)['loss_distill_fpn'].item() > 0


def test_segmentor_pixel_kd_and_feature_imitation(seg_teacher_ckpt):
    model = Distiller(
        student=tiny_pspnet(8, 16),
        teacher=dict(config=dict(default_scope='mmseg',
                                 model=tiny_pspnet(16, 32)),
                     checkpoint=seg_teacher_ckpt),
        distill=dict(
            logits=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                        teacher='decode_head.conv_seg', loss_weight=10.),
            bottleneck=dict(type='FeatureImitation',
                            student='decode_head.bottleneck',
                            teacher='decode_head.bottleneck')),
        probe_size=(32, 32))
    conv = model.distill_terms.bottleneck.adaptors[0].conv.conv
    assert (conv.in_channels, conv.out_channels) == (16, 32)
    calls = []
    model.teacher.decode_head.conv_seg.register_forward_pre_hook(
        lambda *a: calls.append(1))
    inputs, samples = make_probe_batch(model.student, (32, 32))
    losses = model.loss(torch.randn_like(inputs), samples)
    assert calls == [1]
    assert {'decode.loss_ce', 'loss_distill_logits',
            'loss_distill_bottleneck'} <= set(losses)
    assert losses['loss_distill_logits'] > 0


def test_package_teacher_config_paths_resolve_with_suggestions():
    from mmkd.distillers.teacher import resolve_config_path
    path = resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    assert path.endswith('retinanet_r18_fpn_1x_coco.py')
    with pytest.raises(FileNotFoundError,
                       match='retinanet_r18_fpn_1x_coco.py'):
        resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_cocoo.py')
    with pytest.raises(FileNotFoundError, match='not installed'):
        resolve_config_path('mmnothing::a/b.py')
