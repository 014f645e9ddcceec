import copy

import pytest
import torch
from conftest import save_teacher, tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch


def _det_distiller(ckpt, distill=None, student=None, **kwargs):
    distill = distill or dict(fpn=dict(
        type='FeatureImitation', student='neck', teacher='neck',
        mask=dict(type='FGFIMask')))
    return Distiller(
        student=student or tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=ckpt),
        distill=distill, probe_size=(64, 64), **kwargs)


def _seg_distiller(ckpt, distill):
    return Distiller(
        student=tiny_pspnet(8, 16),
        teacher=dict(config=dict(default_scope='mmseg',
                                 model=tiny_pspnet(16, 32)),
                     checkpoint=ckpt),
        distill=distill, probe_size=(32, 32))


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
    assert len(ours) == len(plain) == 2  # class and box maps
    for a, b in zip(ours[0] + ours[1], plain[0] + plain[1]):
        assert torch.equal(a, b)
    # val/test: the runner's val_step predicts with the student, and the
    # teacher does not run
    calls = []
    model.teacher.register_forward_pre_hook(lambda *a: calls.append(1))
    from mmengine.config import ConfigDict
    model.student.bbox_head.test_cfg = ConfigDict(
        model.student.bbox_head.test_cfg, score_thr=0.0)  # as the Runner's
    with torch.no_grad():
        ours = model.val_step(dict(inputs=list(inputs), data_samples=[
            copy.deepcopy(s) for s in samples]))
        plain = model.student.val_step(dict(inputs=list(inputs),
                                            data_samples=samples))
    assert calls == [] and len(ours) == len(plain) == 2
    for a, b in zip(ours, plain):
        assert len(a.pred_instances) > 0
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)


def test_student_initialisation_ignores_the_teacher(det_teacher_ckpt):
    """Same seed, same student weights, with or without distillation."""
    from mmengine.registry import MODELS
    torch.manual_seed(1)
    alone = MODELS.build(tiny_retinanet(8, 16))
    alone.init_weights()
    torch.manual_seed(1)
    model = _det_distiller(det_teacher_ckpt)
    model.student.init_weights()
    assert alone.state_dict().keys() == model.student.state_dict().keys()
    for (name, a), b in zip(alone.state_dict().items(),
                            model.student.state_dict().values()):
        assert torch.equal(a, b), name


def test_to_moves_and_casts_the_teacher(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt).to(torch.float64)
    assert next(model.teacher.parameters()).dtype == torch.float64


def test_missing_checkpoint_fails_before_building(det_scope, tmp_path,
                                                  monkeypatch):
    import mmkd.distillers.distiller as distiller_module

    def must_not_build(*args, **kwargs):
        raise AssertionError('a model was built before the checkpoint check')

    monkeypatch.setattr(distiller_module, 'build_model_in_scope',
                        must_not_build)
    with pytest.raises(FileNotFoundError, match='teacher.checkpoint'):
        _det_distiller(str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match='checkpoint is required'):
        _det_distiller(None)
    with pytest.raises(ValueError, match='only http:// and https://'):
        _det_distiller('file:///tmp/teacher.pth')
    with pytest.raises(ValueError, match=r"got keys \['cfg', 'checkpoint'\]"):
        Distiller(student=tiny_retinanet(), distill=dict(),
                  teacher=dict(cfg='x.py', checkpoint=str(tmp_path)))


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
    model = _seg_distiller(seg_teacher_ckpt, distill=dict(
        logits=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', loss_weight=10.),
        bottleneck=dict(type='FeatureImitation',
                        student='decode_head.bottleneck',
                        teacher='decode_head.bottleneck')))
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


def test_probe_leaves_student_batch_norm_statistics_untouched(
        det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt)
    norms = [m for m in model.student.modules()
             if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and model.student.training
    for norm in norms:
        assert norm.num_batches_tracked.item() == 0
        assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))


def test_sync_bn_student_builds_under_a_process_group(tmp_path,
                                                     det_teacher_ckpt):
    """Under DDP the model is built on the CPU with the process group up;
    SyncBN in train mode would then refuse the CPU probe batch."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg',
                            rank=0, world_size=1)
    try:
        student = tiny_retinanet(8, 16)
        student['backbone']['norm_cfg'] = dict(type='SyncBN')
        model = _det_distiller(det_teacher_ckpt, student=student, distill=dict(
            fpn=dict(type='FeatureImitation', student='neck', teacher='neck',
                     adaptor=dict(type='ConvAdaptor',
                                  norm_cfg=dict(type='SyncBN')))))
    finally:
        dist.destroy_process_group()
    for part in (model.student, model.distill_terms):
        norms = [m for m in part.modules()
                 if isinstance(m, torch.nn.SyncBatchNorm)]
        assert norms and all(m.training for m in norms)


def test_mask_rcnn_student_gets_masks_in_the_probe(det_teacher_ckpt):
    from mmengine.config import Config

    from mmkd.distillers.teacher import resolve_config_path
    student = Config.fromfile(resolve_config_path(
        'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')).model
    student.backbone.init_cfg = None
    # stride 8: P3 of Mask R-CNN's five levels, P3 of the teacher's three
    model = _det_distiller(det_teacher_ckpt, student=student, distill=dict(
        p3=dict(type='FeatureImitation', student='neck.fpn_convs.1',
                teacher='neck.fpn_convs.0', mask=dict(type='GtBoxMask'))))
    losses = model.loss(*_batch(model))
    assert {'loss_mask', 'loss_rpn_cls', 'loss_distill_p3'} <= set(losses)
    assert losses['loss_distill_p3'] > 0


def test_fgfi_mask_on_a_single_fpn_level(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt, distill=dict(p4=dict(
        type='FeatureImitation', student='neck.fpn_convs.1',
        teacher='neck.fpn_convs.1', mask=dict(type='FGFIMask'))))
    assert model.loss(*_batch(model))['loss_distill_p4'] > 0


def test_fgfi_mask_on_a_level_without_anchors_fails_at_build(
        det_teacher_ckpt):
    # layer1 has stride 4; the anchors are laid at strides 8, 16 and 32
    with pytest.raises(RuntimeError,
                       match=r"'c2'.*build-time probe.*matches no"):
        _det_distiller(det_teacher_ckpt, distill=dict(c2=dict(
            type='FeatureImitation', student='backbone.layer1',
            teacher='backbone.layer1', mask=dict(type='FGFIMask'))))


def test_box_mask_on_a_segmentor_fails_at_build(seg_teacher_ckpt):
    with pytest.raises(ValueError, match='GtBoxMask.*EncoderDecoder.*mmseg'):
        _seg_distiller(seg_teacher_ckpt, distill=dict(fi=dict(
            type='FeatureImitation', student='decode_head.bottleneck',
            teacher='decode_head.bottleneck', mask=dict(type='GtBoxMask'))))


def test_package_teacher_config_paths_resolve_with_suggestions():
    from mmkd.distillers.teacher import resolve_config_path
    path = resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    assert path.endswith('retinanet_r18_fpn_1x_coco.py')
    with pytest.raises(FileNotFoundError,
                       match='retinanet_r18_fpn_1x_coco.py'):
        resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_cocoo.py')
    with pytest.raises(FileNotFoundError, match='not installed'):
        resolve_config_path('mmnothing::a/b.py')


def test_explicit_data_preprocessor_drives_the_teacher_conversion(
        det_teacher_ckpt):
    """Batches are normalised by the distiller's own preprocessor when one
    is given, so the teacher's inputs are converted from that one."""
    std = [58.395, 57.12, 57.375]
    model = _det_distiller(det_teacher_ckpt, data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=std, bgr_to_rgb=False, pad_size_divisor=32))
    converter = model.teacher_input_converter
    assert converter is not None  # the student's own matches the teacher
    torch.testing.assert_close(converter.scale.view(-1), torch.tensor(std))


def test_probe_leaves_adaptor_batch_norm_untouched(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt, distill=dict(fpn=dict(
        type='FeatureImitation', student='neck', teacher='neck',
        adaptor=dict(type='ConvAdaptor', norm_cfg=dict(type='BN')))))
    norms = [m for m in model.distill_terms.modules()
             if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 3 and all(m.training for m in norms)
    for norm in norms:
        assert norm.num_batches_tracked.item() == 0
        assert torch.equal(norm.running_mean,
                           torch.zeros_like(norm.running_mean))


def test_unexecuted_teacher_module_names_the_term(det_teacher_ckpt):
    # the teacher runs its tensor forward: its loss modules never run
    with pytest.raises(RuntimeError, match=r"Term 'cls': teacher module "
                       r"bbox_head.loss_cls.*not executed.*tensor-mode"):
        _det_distiller(det_teacher_ckpt, distill=dict(cls=dict(
            type='FeatureImitation', student='neck',
            teacher='bbox_head.loss_cls')))


def test_reading_an_input_stops_the_teacher_before_that_module(
        det_teacher_ckpt):
    read = dict(path='bbox_head.retina_cls', record='input')
    model = _det_distiller(det_teacher_ckpt, distill=dict(fpn=dict(
        type='FeatureImitation', student=read, teacher=read)))
    started = []
    model.teacher.bbox_head.retina_cls.register_forward_pre_hook(
        lambda *args: started.append(1))
    losses = model.loss(*_batch(model))
    # the shared conv runs for levels 0 and 1; the input of level 2 is
    # the last record needed, so the conv does not run on it
    assert len(started) == 2 and losses['loss_distill_fpn'] > 0


def test_deepcopy_shares_the_teacher_and_still_trains(det_teacher_ckpt):
    """EMA hooks deep-copy the model: the copy must not duplicate the
    teacher, and both models keep working."""
    model = _det_distiller(det_teacher_ckpt)
    copied = copy.deepcopy(model)
    assert copied.teacher is model.teacher
    assert copied.student is not model.student
    assert copied.distill_terms.fpn is not model.distill_terms.fpn
    batch = _batch(model)
    for m in (copied, model):
        assert m.loss(*batch)['loss_distill_fpn'] > 0
    with torch.no_grad():
        copied.distill_terms.fpn.adaptors[0].conv.conv.weight.zero_()
    assert model.distill_terms.fpn.adaptors[0].conv.conv.weight.abs().sum() > 0


def test_probe_runs_on_the_gpu_only_under_a_cpu_less_backend(monkeypatch):
    import torch.distributed as dist

    from mmkd.distillers.probe import probe_device
    assert probe_device() == torch.device('cpu')  # no process group
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 3)
    for backend, device in [('nccl', 'cuda:3'), ('gloo', 'cpu'),
                            ('cpu:gloo,cuda:nccl', 'cpu'), ('mpi', 'cpu')]:
        monkeypatch.setattr(dist, 'get_backend', lambda b=backend: b)
        assert probe_device() == torch.device(device), backend
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(dist, 'get_backend', lambda: 'nccl')
    assert probe_device() == torch.device('cpu')
