"""Models with roles: named teachers, ensembles, schedules, a teacher's own
inputs and EMA teachers of the student."""
import copy
import importlib.util
import os.path as osp

import pytest
import torch
from conftest import REPO, save_teacher, tiny_retinanet
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from tiny_heads import det_batch, tiny_faster_rcnn, tiny_gfl

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.heads import mean_teacher_predictions
from mmkd.heads.predictions import mean_class_logits
from mmkd.slots import TeacherChoice, TeacherEnsemble

NECK = dict(type='FeatureImitation', student='neck', teacher='neck')


@pytest.fixture
def two_teachers(tmp_path, det_scope):
    """Two RetinaNet teachers of different widths and seeds."""
    a = save_teacher(tiny_retinanet(16, 32), str(tmp_path / 'a.pth'),
                     'mmdet')
    torch.manual_seed(1)
    b_cfg = tiny_retinanet(8, 32)
    b = str(tmp_path / 'b.pth')
    from mmengine.registry import MODELS
    torch.save(dict(state_dict=MODELS.build(copy.deepcopy(b_cfg))
                    .state_dict()), b)
    return dict(
        a=dict(config=dict(default_scope='mmdet',
                           model=tiny_retinanet(16, 32)), checkpoint=a),
        b=dict(config=dict(default_scope='mmdet', model=b_cfg),
               checkpoint=b))


@pytest.fixture
def message_hub(runner_state_restored):
    """The current message hub (a new one, dropped afterwards), whose
    iter/epoch the tests set as a Runner would."""
    hub = MessageHub.get_instance('mmkd_test_teacher_slots')
    assert MessageHub.get_current_instance() is hub
    yield hub


def _distiller(teachers, distill, student=None, **kwargs):
    return Distiller(student=student or tiny_retinanet(8, 16),
                     teachers=teachers, distill=distill,
                     probe_size=(64, 64), **kwargs)


def _batch(model, size=(64, 64)):
    inputs, samples = make_probe_batch(model.student, size)
    return torch.randn_like(inputs), samples


def _count_forwards(module):
    calls = []
    module.register_forward_pre_hook(lambda *a: calls.append(1))
    return calls


# -- names --------------------------------------------------------------------
def test_unknown_teacher_name_is_a_build_error_listing_the_names(
        two_teachers):
    with pytest.raises(ValueError, match=r"'c'.*teachers are \['a', 'b'\]"):
        _distiller(two_teachers, dict(fpn=dict(NECK, teacher_model='c')))


def test_a_term_must_name_its_teacher_among_several(two_teachers):
    with pytest.raises(ValueError, match=r"teachers \['a', 'b'\].*"
                                         'teacher_model'):
        _distiller(two_teachers, dict(fpn=NECK))


def test_teacher_and_teachers_together_are_refused(two_teachers):
    with pytest.raises(ValueError, match='exactly one'):
        Distiller(student=tiny_retinanet(8, 16), teacher=two_teachers['a'],
                  teachers=two_teachers, distill=dict(fpn=NECK))


def test_each_term_reads_its_named_teacher_and_teachers_stay_hidden(
        two_teachers):
    model = _distiller(two_teachers, dict(
        fa=dict(NECK, teacher_model='a'), fb=dict(NECK, teacher_model='b')))
    assert model.distill_terms.fa.teacher_choice.names == ['a']
    keys = model.state_dict().keys()
    assert not any(k.startswith(('slots', 'teacher')) for k in keys)
    own = {id(p) for p in model.parameters()}
    for slot in model.slots.values():
        assert slot.role == 'frozen'
        assert not {id(p) for p in slot.module.parameters()} & own
        assert not any(p.requires_grad for p in slot.module.parameters())
    model.train()
    assert not any(m.training for s in model.slots.values()
                   for m in s.module.modules())
    copied = copy.deepcopy(model)
    assert all(copied.slots[n].module is model.slots[n].module
               for n in model.slots)
    with pytest.raises(AttributeError, match='slots'):
        model.teacher  # noqa: B018 -- ambiguous with two teachers


def test_a_teacher_runs_as_deep_as_its_own_terms(two_teachers):
    model = _distiller(two_teachers, dict(
        fa=dict(NECK, teacher_model='a'),
        fb=dict(NECK, student='backbone', teacher='backbone',
                teacher_model='b')))
    necks = {n: _count_forwards(s.module.neck)
             for n, s in model.slots.items()}
    model.train().loss(*_batch(model))
    assert len(necks['a']) == 1 and necks['b'] == []


# -- schedules ----------------------------------------------------------------
def test_a_teacher_no_term_reads_in_this_stage_does_not_run(
        two_teachers, message_hub):
    schedule = dict(schedule=[(0, 'a'), (3, 'b')], by='iter')
    model = _distiller(two_teachers,
                       dict(fpn=dict(NECK, teacher_model=schedule)))
    runs = {n: _count_forwards(s.module) for n, s in model.slots.items()}
    model.train()
    for iteration, expect in ((0, 'a'), (2, 'a'), (3, 'b'), (7, 'b')):
        message_hub.update_info('iter', iteration)
        model.loss(*_batch(model))
        other = 'b' if expect == 'a' else 'a'
        assert runs[expect][-1:] == [1], iteration
        runs[expect].clear()
        assert runs[other] == [], iteration


def test_schedules_by_epoch_follow_the_runner_epoch(two_teachers,
                                                    message_hub):
    schedule = dict(schedule=[(0, 'a'), (2, ('a', 'b'))], by='epoch')
    model = _distiller(two_teachers,
                       dict(fpn=dict(NECK, teacher_model=schedule)))
    message_hub.update_info('iter', 100)
    message_hub.update_info('epoch', 1)
    assert model.teachers_read(100, 1) == dict(fpn=('a', ))
    assert model.teachers_read(100, 2) == dict(fpn=('a', 'b'))


@pytest.mark.parametrize('schedule, match', [
    (dict(schedule=[(1, 'a')]), 'first 0'),
    (dict(schedule=[(0, 'a'), (0, 'b')]), 'increasing'),
    (dict(schedule=[(0, 'a')], by='step'), 'by must be'),
    (dict(stages=[(0, 'a')]), 'schedule='),
    (('a', 'a'), 'distinct'),
])
def test_bad_schedules_are_build_errors(schedule, match):
    with pytest.raises(ValueError, match=match):
        TeacherChoice.parse(schedule, ['a', 'b'], 'fpn')


def test_scheduled_teachers_must_give_the_same_shapes(tmp_path,
                                                      two_teachers):
    # a teacher of another FPN width: one adaptor cannot serve both
    wide = tiny_retinanet(8, 48)
    ckpt = save_teacher(wide, str(tmp_path / 'w.pth'), 'mmdet')
    teachers = dict(two_teachers, w=dict(
        config=dict(default_scope='mmdet', model=wide), checkpoint=ckpt))
    with pytest.raises(ValueError, match="teacher 'w' gives"):
        _distiller(teachers, dict(fpn=dict(NECK, teacher_model=dict(
            schedule=[(0, 'a'), (5, 'w')]))))


# -- ensembles ----------------------------------------------------------------
def test_feature_ensemble_is_the_mean_of_the_teachers_maps(two_teachers):
    model = _distiller(two_teachers, dict(fpn=dict(
        NECK, teacher_model=('a', 'b'))))
    term = model.distill_terms.fpn
    inputs, samples = _batch(model)
    model.train().loss(inputs, samples)  # a first step, with its records
    model.run_teachers(inputs, samples)
    records = [model.slots[n].recorder.get(term.teacher_spec)
               for n in ('a', 'b')]
    mean = term.read_teacher(TeacherEnsemble(records))
    for level, (ta, tb) in zip(mean, zip(*records)):
        assert torch.allclose(level, (ta + tb) / 2)
    with torch.no_grad():
        model.student_recorder.active = True
        model.student.loss(inputs, samples)
        model.student_recorder.active = False
    student = model.student_recorder.get(term.student_spec)
    alone = term.compute(list(student), [(a + b) / 2 for a, b in
                                         zip(*records)], samples)
    assert torch.allclose(
        term(student, TeacherEnsemble(records), samples, 10) /
        term.loss_weight, alone)


def test_class_probabilities_and_gfl_distributions_are_averaged():
    a, b = torch.tensor([[0.0, 2.0]]), torch.tensor([[2.0, -1.0]])
    mean = mean_class_logits([a, b], use_sigmoid=True).sigmoid()
    assert torch.allclose(mean, (a.sigmoid() + b.sigmoid()) / 2)
    soft = mean_class_logits([a, b], use_sigmoid=False).softmax(-1)
    assert torch.allclose(soft, (a.softmax(-1) + b.softmax(-1)) / 2)


def test_dense_head_ensemble_averages_the_teachers_predictions(
        tmp_path, det_scope):
    teachers = {}
    for seed, name in enumerate(('g1', 'g2')):
        torch.manual_seed(seed)
        cfg = tiny_gfl(32, 16)
        path = save_teacher(cfg, str(tmp_path / f'{name}.pth'), 'mmdet')
        teachers[name] = dict(config=dict(default_scope='mmdet', model=cfg),
                              checkpoint=path)
    # different weights in the two checkpoints
    state = torch.load(teachers['g2']['checkpoint'])
    state['state_dict'] = {k: v + 0.01 * torch.randn_like(v.float())
                           if v.is_floating_point() else v
                           for k, v in state['state_dict'].items()}
    torch.save(state, teachers['g2']['checkpoint'])
    model = _distiller(teachers, dict(
        ld=dict(type='LocalizationDistillation', teacher_model=('g1', 'g2'))),
        student=tiny_gfl(16, 8))
    term = model.distill_terms.ld
    inputs, samples = det_batch()
    model.train()
    model.run_teachers(inputs, samples)
    with torch.no_grad():
        model.student_recorder.active = True
        model.student.loss(inputs, samples)
        model.student_recorder.active = False
    student = model.student_recorder.get(term.student_spec)
    records = [model.slots[n].recorder.get(term.teacher_spec)
               for n in ('g1', 'g2')]
    alone = [term.view.collect(student, r) for r in records]
    mean = term.collect(student, term.read_teacher(TeacherEnsemble(records)))
    probs = (alone[0].cls_teacher.sigmoid() +
             alone[1].cls_teacher.sigmoid()) / 2
    assert torch.allclose(mean.cls_teacher.sigmoid(), probs, atol=1e-5)
    bins = model.student.bbox_head.reg_max + 1
    dist = [p.reg_teacher.reshape(-1, 4, bins).softmax(-1) for p in alone]
    assert torch.allclose(mean.reg_teacher.reshape(-1, 4, bins).softmax(-1),
                          (dist[0] + dist[1]) / 2, atol=1e-5)
    again = mean_teacher_predictions(alone)
    assert torch.allclose(again.cls_teacher, mean.cls_teacher)


def test_terms_that_run_one_teacher_refuse_ensembles(tmp_path, det_scope):
    cfg = tiny_faster_rcnn()
    path = save_teacher(cfg, str(tmp_path / 'f.pth'), 'mmdet')
    teacher = dict(config=dict(default_scope='mmdet', model=cfg),
                   checkpoint=path)
    with pytest.raises(ValueError, match='one teacher at a time'):
        _distiller(dict(a=teacher, b=teacher), dict(rcnn=dict(
            type='RoIBackgroundWeightedSoftTargets',
            teacher_model=('a', 'b'))), student=tiny_faster_rcnn())


# -- a teacher's own inputs -----------------------------------------------------
def test_a_rescaled_teacher_sees_rescaled_images_and_ground_truth(
        two_teachers):
    teachers = dict(a=dict(two_teachers['a'], inputs=dict(scale=2.0)))
    model = _distiller(teachers, dict(fpn=dict(NECK)))
    seen = []
    model.slots['a'].module.register_forward_pre_hook(
        lambda m, args: seen.append(args))
    inputs, samples = _batch(model)
    before = samples[0].gt_instances.bboxes.clone()
    losses = model.train().loss(inputs, samples)
    t_inputs, t_samples = seen[-1][:2]
    assert t_inputs.shape[-2:] == (128, 128)
    assert torch.allclose(t_samples[0].gt_instances.bboxes, before * 2)
    assert t_samples[0].img_shape == (128, 128)
    assert t_samples[0].batch_input_shape == (128, 128)
    # the student's own samples are untouched
    assert torch.equal(samples[0].gt_instances.bboxes, before)
    assert samples[0].img_shape == (64, 64)
    # the adaptor aligned the teacher's 2x maps to the student's
    assert torch.isfinite(losses['loss_distill_fpn'])


def test_dense_head_terms_refuse_a_rescaled_teacher(tmp_path, det_scope):
    cfg = tiny_gfl(32, 16)
    path = save_teacher(cfg, str(tmp_path / 'g.pth'), 'mmdet')
    with pytest.raises(ValueError, match='rescaled by 2.0'):
        _distiller(dict(g=dict(config=dict(default_scope='mmdet', model=cfg),
                               checkpoint=path, inputs=dict(scale=2.0))),
                   dict(ld=dict(type='LocalizationDistillation')),
                   student=tiny_gfl(16, 8))


def _depth_teacher(tmp_path):
    """A teacher of one-channel images (its own preprocessor)."""
    cfg = tiny_retinanet(16, 32)
    cfg['backbone']['in_channels'] = 1
    cfg['data_preprocessor'] = dict(type='DetDataPreprocessor', mean=[100.],
                                    std=[50.], bgr_to_rgb=False,
                                    pad_size_divisor=32)
    path = save_teacher(cfg, str(tmp_path / 'depth.pth'), 'mmdet')
    return dict(config=dict(default_scope='mmdet', model=cfg),
                checkpoint=path, inputs=dict(key='depth'))


def _raw_batch(model, with_depth=True):
    _, samples = make_probe_batch(model.student, (64, 64))
    data = dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
                        for _ in samples],
                data_samples=samples)
    if with_depth:
        data['depth'] = [torch.full((1, 64, 64), 7, dtype=torch.uint8)
                         for _ in samples]
    return data


def test_a_teacher_reads_another_key_of_the_batch(tmp_path, det_scope):
    model = _distiller(dict(depth=_depth_teacher(tmp_path)),
                       dict(fpn=dict(NECK)))
    seen = []
    model.slots['depth'].module.backbone.register_forward_pre_hook(
        lambda m, args: seen.append(args[0]))
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    from mmengine.optim import OptimWrapper
    log = model.train().train_step(_raw_batch(model), OptimWrapper(optim))
    assert 'loss_distill_fpn' in log
    # the teacher's own preprocessor normalised the depth images
    assert seen[-1].shape[1] == 1
    assert torch.allclose(seen[-1][:, :, :64, :64],
                          torch.full_like(seen[-1][:, :, :64, :64],
                                          (7 - 100) / 50))
    # outside training (validation) the key is dropped
    data = model.data_preprocessor(_raw_batch(model), False)
    assert set(data) == {'inputs', 'data_samples'}
    assert data['inputs'].shape[1] == 3


def test_a_missing_input_key_says_how_to_add_it(tmp_path, det_scope):
    model = _distiller(dict(depth=_depth_teacher(tmp_path)),
                       dict(fpn=dict(NECK)))
    from mmengine.optim import OptimWrapper
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    with pytest.raises(KeyError, match='batch key.*depth.*mmkd.PackExtraInputs'):
        model.train().train_step(_raw_batch(model, with_depth=False), optim)


def test_bad_slot_inputs_are_refused_before_building(two_teachers):
    for inputs, match in ((dict(scale=0), 'scale'), (dict(key='inputs'),
                                                     'key'),
                          (dict(size=2), 'inputs must be')):
        bad = dict(a=dict(two_teachers['a'], inputs=inputs))
        with pytest.raises(ValueError, match=match):
            _distiller(bad, dict(fpn=dict(NECK)))


# -- EMA teachers -----------------------------------------------------------
def _ema_model(decay=0.5, **kwargs):
    return _distiller(dict(mean=dict(role='ema', decay=decay)),
                      dict(fpn=dict(NECK)), **kwargs)


def _steps(model, optim, hub, iterations, batches):
    for iteration in iterations:
        hub.update_info('iter', iteration)
        losses = model.loss(*batches[iteration])
        loss, _ = model.parse_losses(losses)
        optim.zero_grad()
        loss.backward()
        optim.step()


def test_ema_teacher_follows_the_student_mean(det_scope, message_hub):
    model = _ema_model(decay=0.5).train()
    ema = model.slots['mean'].module
    assert not any(p.requires_grad for p in ema.parameters())
    assert not {id(p) for p in ema.parameters()} & \
        {id(p) for p in model.parameters()}
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(0)
    batches = [_batch(model) for _ in range(3)]
    def weight(m):
        return m.neck.fpn_convs[0].conv.weight.detach().clone()

    w0 = weight(model.student)
    _steps(model, optim, message_hub, [0], batches)
    # step 0 read a copy of the (initialised) student
    assert torch.equal(weight(ema), w0)
    w1 = weight(model.student)
    assert not torch.equal(w0, w1)
    message_hub.update_info('iter', 1)
    model.loss(*batches[1])
    # step 1: alpha = min(0.5, 1 - 1/2) = 0.5 over the copy of step 0's
    # student and the student after one optimizer step
    assert model.slots['mean'].settings['updates'] == 2
    assert torch.allclose(weight(ema), 0.5 * w0 + 0.5 * w1)
    # a repeated call in the same step does not update again
    model.loss(*batches[1])
    assert torch.allclose(weight(ema), 0.5 * w0 + 0.5 * w1)


def test_ema_teacher_is_saved_and_resume_is_bit_exact(det_scope,
                                                      message_hub):
    torch.manual_seed(0)
    model = _ema_model(decay=0.9).train()
    batches = [_batch(model) for _ in range(5)]
    state0 = copy.deepcopy(model.state_dict())
    optim = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    _steps(model, optim, message_hub, range(3), batches)
    saved = copy.deepcopy(get_state_dict(model))
    saved_optim = copy.deepcopy(optim.state_dict())
    assert saved['ema_teachers.mean.num_updates'].item() == 3
    assert any(k.startswith('ema_teachers.mean.neck.') for k in saved)
    _steps(model, optim, message_hub, range(3, 5), batches)
    # a fresh process resuming from the checkpoint of iteration 3
    torch.manual_seed(123)
    resumed = _ema_model(decay=0.9).train()
    load_state_dict(resumed, saved, strict=True)
    optim2 = torch.optim.SGD(resumed.parameters(), lr=0.002,
                             momentum=0.9)
    optim2.load_state_dict(saved_optim)
    _steps(resumed, optim2, message_hub, range(3, 5), batches)
    final, again = model.state_dict(), resumed.state_dict()
    assert final.keys() == again.keys()
    for key in final:
        assert torch.equal(final[key], again[key]), key
    for a, b in zip(model.slots['mean'].module.state_dict().values(),
                    resumed.slots['mean'].module.state_dict().values()):
        assert torch.equal(a, b)
    # the EMA is never part of the student's export
    assert not any(k.startswith('student.ema') for k in final)
    assert set(state0) == set(final)


def test_ema_teacher_without_saved_state_restarts_from_the_student(
        det_scope, message_hub):
    model = _ema_model().train()
    message_hub.update_info('iter', 5)
    with pytest.warns(UserWarning, match='copy of the student'):
        model.loss(*_batch(model))
    for a, b in zip(model.slots['mean'].module.parameters(),
                    model.student.parameters()):
        assert torch.equal(a, b)


def test_bad_ema_settings_are_refused(det_scope):
    with pytest.raises(ValueError, match='decay'):
        _ema_model(decay=1.0)
    with pytest.raises(ValueError, match='no config or checkpoint'):
        _distiller(dict(mean=dict(role='ema', checkpoint='x.pth')),
                   dict(fpn=dict(NECK)))


def _ema_seg_runner(work_dir, max_iters, **kwargs):
    """A Runner training a tiny PSPNet against an EMA of itself (pixel KD
    on the score maps), checkpoints every 2 iterations."""
    from conftest import tiny_pspnet
    from mmengine.runner import Runner
    from test_adversarial_training import SIZE, _loader
    student = tiny_pspnet(8, 16)
    # no dropout: MMEngine does not restore the RNG state on resume
    student['decode_head']['dropout_ratio'] = 0.0
    torch.manual_seed(0)  # the same initial weights in every run
    model = Distiller(
        student=student,
        teachers=dict(mean=dict(role='ema', decay=0.9)),
        distill=dict(pixel=dict(type='PixelwiseKD',
                                student='decode_head.conv_seg',
                                teacher='decode_head.conv_seg')),
        probe_size=(SIZE, SIZE))
    return Runner(
        model=model, work_dir=str(work_dir),
        experiment_name=f'ema-{osp.basename(str(work_dir))}-{max_iters}',
        train_dataloader=_loader(),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01,
                                          momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        log_processor=dict(by_epoch=False), randomness=dict(seed=0),
        default_scope='mmseg', **kwargs)


def test_ema_teacher_resume_through_the_runner_is_bit_exact(
        tmp_path, seg_scope, runner_state_restored):
    straight = _ema_seg_runner(tmp_path / 'straight', 4)
    straight.train()
    saved = torch.load(tmp_path / 'straight' / 'iter_2.pth',
                       weights_only=True)
    assert saved['state_dict']['ema_teachers.mean.num_updates'] == 2
    # the same run stopped after 2 iterations and resumed by a new Runner
    first = _ema_seg_runner(tmp_path / 'split', 2)
    first.train()
    second = _ema_seg_runner(
        tmp_path / 'split', 4, resume=True,
        load_from=str(tmp_path / 'split' / 'iter_2.pth'))
    second.train()
    assert second.iter == 4
    a = straight.model.state_dict()
    b = second.model.state_dict()
    assert a.keys() == b.keys()
    assert any(k.startswith('ema_teachers.mean.decode_head') for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the exported student holds no EMA weights
    spec = importlib.util.spec_from_file_location(
        'extract_student', osp.join(REPO, 'tools', 'extract_student.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    plain = tool.extract_student(saved)
    assert set(plain['state_dict']) == \
        set(straight.model.student.state_dict())
