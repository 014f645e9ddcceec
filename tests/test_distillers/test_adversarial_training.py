"""Adversarial distillation's train step: two optimizers, the
discriminator updated before the student, resume of both optimizers and
schedulers through MMEngine's Runner, and extraction without the
discriminator."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.structures import PixelData

from conftest import REPO, save_teacher, tiny_pspnet

from mmkd import Distiller

SIZE = 32
OPTIM_WRAPPER = dict(
    constructor='mmkd.AdversarialOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
    discriminator=dict(type='OptimWrapper',
                       optimizer=dict(type='SGD', lr=4e-4, momentum=0.9)))


@pytest.fixture
def teacher_ckpt(tmp_path, seg_scope):
    return save_teacher(tiny_pspnet(16, 32), str(tmp_path / 't.pth'),
                        'mmseg')


def _distiller(ckpt, discriminator_steps=1):
    torch.manual_seed(0)
    return Distiller(
        student=tiny_pspnet(),
        teacher=dict(config=tiny_pspnet(16, 32), checkpoint=ckpt),
        distill=dict(
            pixel=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                       teacher='decode_head.conv_seg', loss_weight=1.0),
            hint=dict(type='FeatureImitation',
                      student='decode_head.bottleneck',
                      teacher='decode_head.bottleneck'),
            holistic=dict(type='HolisticAdversarialKD',
                          student='decode_head.conv_seg',
                          teacher='decode_head.conv_seg',
                          discriminator=dict(type='ScoreMapDiscriminator',
                                             widths=(4, 8)),
                          discriminator_steps=discriminator_steps)),
        probe_size=(SIZE, SIZE))


def _data(num_images=4):
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(3)
    data = []
    for _ in range(num_images):
        sample = SegDataSample(metainfo=dict(
            img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
            pad_shape=(SIZE, SIZE)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, 4, (1, SIZE, SIZE), generator=generator))
        image = torch.randint(0, 4, (3, SIZE, SIZE), generator=generator,
                              dtype=torch.uint8)
        data.append(dict(inputs=image, data_samples=sample))
    return data


def _loader():
    return torch.utils.data.DataLoader(_data(), batch_size=2,
                                       collate_fn=pseudo_collate)


def _batch():
    return pseudo_collate(_data(2))


def _changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_one_step_changes_student_adaptors_and_discriminator_only(
        teacher_ckpt, runner_state_restored):
    model = _distiller(teacher_ckpt)
    wrappers = build_optim_wrapper(model, OPTIM_WRAPPER)
    before = copy.deepcopy(model.state_dict())
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    log_vars = model.train_step(_batch(), wrappers)
    changed = _changed(before, model.state_dict())
    for prefix in ('student.decode_head.conv_seg.weight',
                   'student.backbone.stem.0.weight',
                   'distill_terms.hint.adaptors.0.conv.conv.weight',
                   'distill_terms.holistic.discriminator.features.0.'
                   'parametrizations.weight.original',
                   'distill_terms.holistic.discriminator.last.'
                   'parametrizations.weight.original'):
        assert prefix in changed, prefix
    assert all(k.startswith(('student.', 'distill_terms.'))
               for k in before)  # the teacher is not in the state dict
    assert not _changed(teacher_before, model.teacher.state_dict())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    for key in ('loss_distill_pixel', 'loss_distill_hint',
                'loss_distill_holistic', 'loss_discriminator_holistic',
                'loss'):
        assert torch.isfinite(log_vars[key]), key
    # the discriminator's loss is logged, not part of the student's
    student_sum = sum(v for k, v in log_vars.items()
                      if 'loss' in k and k != 'loss' and
                      not k.startswith('loss_discriminator'))
    assert log_vars['loss'].item() == pytest.approx(student_sum.item(),
                                                    rel=1e-5)
    disc = model.distill_terms.holistic.discriminator
    assert all(p.grad is None or not p.grad.any() for p in disc.parameters())
    assert model.distill_terms.holistic._maps is None  # batch dropped


def test_the_student_is_scored_by_the_updated_discriminator(
        teacher_ckpt, runner_state_restored):
    """With the student's lr 0, recomputing the student's adversarial loss
    after the step with the discriminator's new weights gives the logged
    value; with its old weights it does not."""
    model = _distiller(teacher_ckpt)
    model.student.decode_head.dropout.p = 0.0  # the same maps twice
    cfg = copy.deepcopy(OPTIM_WRAPPER)
    cfg['student']['optimizer'] = dict(type='SGD', lr=0.0)
    cfg['discriminator']['optimizer'] = dict(type='SGD', lr=0.5)
    wrappers = build_optim_wrapper(model, cfg)
    disc = model.distill_terms.holistic.discriminator
    old = copy.deepcopy(disc.state_dict())
    logged = model.train_step(_batch(), wrappers)['loss_distill_holistic']
    disc.eval()  # no further power iteration: the step's last u, v
    data = model.data_preprocessor(_batch(), True)
    with torch.no_grad():
        now = model.loss(**data)['loss_distill_holistic']
        assert now.item() == pytest.approx(logged.item(), rel=1e-5)
        new = copy.deepcopy(disc.state_dict())
        disc.load_state_dict(old)
        before = model.loss(**data)['loss_distill_holistic']
        disc.load_state_dict(new)
    assert before.item() != pytest.approx(logged.item(), rel=1e-3)


def test_discriminator_steps_per_student_step(teacher_ckpt,
                                              runner_state_restored):
    model = _distiller(teacher_ckpt, discriminator_steps=3)
    wrappers = build_optim_wrapper(model, OPTIM_WRAPPER)
    counts = {'student': 0, 'discriminator': 0}
    for key in counts:
        wrapper = wrappers[key]
        update = wrapper.update_params

        def counting(loss, *args, _key=key, _update=update, **kwargs):
            counts[_key] += 1
            return _update(loss, *args, **kwargs)
        wrapper.update_params = counting
    model.train_step(_batch(), wrappers)
    assert counts == {'student': 1, 'discriminator': 3}


def test_a_single_optimizer_is_a_clear_error(teacher_ckpt,
                                             runner_state_restored):
    model = _distiller(teacher_ckpt)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    with pytest.raises(TypeError, match='AdversarialOptimWrapperConstructor'):
        model.train_step(_batch(), wrapper)


def _runner(model, work_dir, max_iters, optim_wrapper=OPTIM_WRAPPER,
            **kwargs):
    from mmengine.runner import Runner
    return Runner(
        model=model, work_dir=str(work_dir),
        experiment_name=f'adv-{osp.basename(work_dir)}-{max_iters}',
        train_dataloader=_loader(),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=copy.deepcopy(optim_wrapper),
        param_scheduler=dict(
            student=[dict(type='PolyLR', eta_min=1e-4, power=0.9,
                          begin=0, end=10, by_epoch=False)],
            discriminator=[dict(type='PolyLR', eta_min=0.0, power=0.9,
                                begin=0, end=10, by_epoch=False)]),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        log_processor=dict(by_epoch=False),
        default_scope='mmseg', **kwargs)


def _flat(state, prefix=''):
    """Every tensor and number of a nested state dict, by path."""
    out = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out.update(_flat(v, f'{prefix}{k}.'))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(_flat(v, f'{prefix}{i}.'))
    else:
        out[prefix] = state
    return out


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def test_resume_restores_both_optimizers_and_schedulers(
        teacher_ckpt, tmp_path, runner_state_restored):
    first = _runner(_distiller(teacher_ckpt), tmp_path / 'run', 2)
    first.train()
    saved = torch.load(tmp_path / 'run' / 'iter_2.pth', weights_only=True)
    assert set(saved['optimizer']) == {'student', 'discriminator'}
    assert set(saved['param_schedulers']) == {'student', 'discriminator'}
    assert any('discriminator' in k for k in saved['state_dict'])
    expected = _flat(first.optim_wrapper.state_dict())
    assert any('momentum_buffer' in k for k in expected)

    # a fresh model and Runner resume from the checkpoint
    second = _runner(_distiller(teacher_ckpt), tmp_path / 'run', 2,
                     resume=True,
                     load_from=str(tmp_path / 'run' / 'iter_2.pth'))
    second.train()  # resumes, then stops: 2 of 2 iterations done
    assert second.iter == 2
    got = _flat(second.optim_wrapper.state_dict())
    assert got.keys() == expected.keys()
    assert all(_equal(got[k], expected[k]) for k in expected)
    for key in ('student', 'discriminator'):
        a = first.param_schedulers[key][0].state_dict()
        b = second.param_schedulers[key][0].state_dict()
        assert a['last_step'] == b['last_step'] == 2
        assert a == b
        # the decayed lr (in the optimizers' param_groups) is restored
        assert second.optim_wrapper[key].get_lr() == \
            first.optim_wrapper[key].get_lr()
    assert second.optim_wrapper['discriminator'].get_lr()['lr'][0] < 4e-4
    disc = 'distill_terms.holistic.discriminator.last.' \
        'parametrizations.weight.original'
    assert torch.equal(first.model.state_dict()[disc],
                       second.model.state_dict()[disc])

    # extract_student drops the discriminator (and adaptors)
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'extract_student', osp.join(REPO, 'tools', 'extract_student.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    plain = tool.extract_student(saved)
    assert plain['state_dict'].keys() == \
        tiny_pspnet_keys(first.model.student)
    assert not any('discriminator' in k or 'adaptor' in k
                   for k in plain['state_dict'])


def tiny_pspnet_keys(student):
    return set(student.state_dict().keys())


def test_train_py_amp_turns_both_wrappers_to_amp(tmp_path, monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'mmkd_train_tool', osp.join(REPO, 'tools', 'train.py'))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    config = osp.join(
        REPO, 'configs/seg/skd/skd_pixel-pair-holistic_pspnet_r101-d8_'
        'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    monkeypatch.setattr('sys.argv', ['train.py', config, '--amp',
                                     '--work-dir', str(tmp_path)])
    cfg = train.build_config(train.parse_args())
    wrapper = cfg.optim_wrapper
    assert wrapper.constructor == 'mmkd.AdversarialOptimWrapperConstructor'
    for key in ('student', 'discriminator'):
        assert wrapper[key].type == 'AmpOptimWrapper'
        assert wrapper[key].loss_scale == 'dynamic'
    assert wrapper.student.optimizer.lr == 0.01  # otherwise unchanged
    assert wrapper.discriminator.optimizer.lr == 4e-4


def test_amp_trains_both_through_the_runner(teacher_ckpt, tmp_path,
                                            monkeypatch,
                                            runner_state_restored):
    """Both wrappers ``AmpOptimWrapper`` (bfloat16 autocast on the CPU; the
    device check of MMEngine 0.10.7 bypassed as in test_amp.py): the
    student runs in bfloat16, the discriminator in float32, both learn."""
    from mmengine.optim import AmpOptimWrapper
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    model = _distiller(teacher_ckpt)
    before = copy.deepcopy(model.state_dict())
    cfg = copy.deepcopy(OPTIM_WRAPPER)
    for key in ('student', 'discriminator'):
        cfg[key].update(type='AmpOptimWrapper', dtype='bfloat16')
    runner = _runner(model, tmp_path / 'amp', 2, optim_wrapper=cfg)
    dtypes = {'student': set(), 'discriminator': set()}
    hooks = [
        model.student.decode_head.conv_seg.register_forward_hook(
            lambda m, i, o: dtypes['student'].add(o.dtype)),
        model.distill_terms.holistic.discriminator.last.register_forward_hook(
            lambda m, i, o: dtypes['discriminator'].add(o.dtype))]
    try:
        runner.train()
    finally:
        for hook in hooks:
            hook.remove()
    assert all(isinstance(runner.optim_wrapper[k], AmpOptimWrapper)
               for k in ('student', 'discriminator'))
    assert dtypes == {'student': {torch.bfloat16},
                      'discriminator': {torch.float32}}
    changed = _changed(before, model.state_dict())
    assert any(k.startswith('student.') for k in changed)
    assert any('.discriminator.' in k for k in changed)
    for key in ('loss_distill_holistic', 'loss_discriminator_holistic'):
        value = runner.message_hub.get_scalar(f'train/{key}').current()
        assert math.isfinite(value), key
