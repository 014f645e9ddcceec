"""Online mutual learning (DML): peers that train beside the student and
teach it while learning from it."""
import copy
import os.path as osp

import pytest
import torch
from conftest import save_teacher, tiny_pspnet, tiny_retinanet
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from slot_helpers import extract_tool, grad_owners, random_batch
from tiny_heads import tiny_gfl

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.trainable import detach_record
from mmkd.recorders import MethodCall, MethodCalls

SIZE = 64
PEER = dict(role='peer', config=dict(default_scope='mmdet',
                                     model=tiny_retinanet(16, 32)))


def _kd_both_ways(term='HeadClassificationKD', **kwargs):
    """Class KD from the peer into the student and back."""
    return dict(
        to_student=dict(type=term, teacher_model='peer', **kwargs),
        to_peer=dict(type=term, student_model='peer',
                     teacher_model='student', **kwargs))


def _dml(peer=None, distill=None, student=None):
    return Distiller(student=student or tiny_retinanet(8, 16),
                     teachers=dict(peer=peer or PEER),
                     distill=distill or _kd_both_ways(),
                     probe_size=(SIZE, SIZE))


def _batch(model):
    return random_batch(model, SIZE)


@pytest.fixture
def message_hub(runner_state_restored):
    hub = MessageHub.get_instance('mmkd_test_peers')
    yield hub


def _grad_owners(model, loss):
    """Which models receive a gradient from ``loss``."""
    return grad_owners(model, loss, lambda name: 'peer' if name.startswith(
        'trainable_slots.peer.') else name.split('.')[0])


def test_a_peer_is_a_trained_submodule_saved_with_the_student(det_scope):
    model = _dml()
    peer = model.slots['peer'].module
    assert model.trainable_slots['peer'] is peer
    assert all(p.requires_grad for p in peer.parameters())
    params = {id(p) for p in model.parameters()}
    assert {id(p) for p in peer.parameters()} <= params
    keys = model.state_dict().keys()
    assert any(k.startswith('trainable_slots.peer.backbone.') for k in keys)
    model.train()
    assert peer.training  # not held in eval as frozen teachers are


def test_each_model_gets_its_task_loss_and_the_terms_it_learns_in(
        det_scope, message_hub):
    model = _dml().train()
    losses = model.loss(*_batch(model))
    assert {'peer.loss_cls', 'peer.loss_bbox', 'loss_cls', 'loss_bbox',
            'loss_distill_to_student', 'loss_distill_to_peer'} <= set(losses)
    total = {k: sum(v) if isinstance(v, list) else v
             for k, v in losses.items()}
    assert _grad_owners(model, total['loss_cls']) == {'student'}
    assert _grad_owners(model, total['peer.loss_cls']) == {'peer'}
    # a term reads its teacher detached: no gradient into the teacher
    assert _grad_owners(model, total['loss_distill_to_student']) == {
        'student'}
    assert _grad_owners(model, total['loss_distill_to_peer']) == {'peer'}
    assert float(total['loss_distill_to_student']) > 0


def test_segmentation_peers_learn_pixel_kd_both_ways(seg_scope,
                                                     message_hub):
    peer = dict(role='peer', config=dict(default_scope='mmseg',
                                         model=tiny_pspnet(16, 32)))
    logits = 'decode_head.conv_seg'
    model = Distiller(
        student=tiny_pspnet(8, 16), teachers=dict(peer=peer),
        distill=dict(
            to_student=dict(type='PixelwiseKD', student=logits,
                            teacher=logits),
            to_peer=dict(type='PixelwiseKD', student=logits,
                         teacher=logits, student_model='peer',
                         teacher_model='student')),
        probe_size=(SIZE, SIZE)).train()
    inputs, samples = make_probe_batch(model.student, (SIZE, SIZE))
    losses = model.loss(torch.randn_like(inputs), samples)
    assert _grad_owners(model, losses['loss_distill_to_peer']) == {'peer'}
    assert _grad_owners(model, losses['loss_distill_to_student']) == {
        'student'}
    assert _grad_owners(model, losses['peer.decode.loss_ce']) == {'peer'}


def test_gfl_peers_distil_localization_both_ways(det_scope, message_hub):
    peer = dict(role='peer', config=dict(default_scope='mmdet',
                                         model=tiny_gfl(32, 16)))
    model = _dml(peer, _kd_both_ways('LocalizationDistillation'),
                 student=tiny_gfl(16, 8)).train()
    losses = model.loss(*_batch(model))
    assert _grad_owners(model, losses['loss_distill_to_peer']) == {'peer'}
    assert float(losses['loss_distill_to_student']) > 0


@pytest.mark.parametrize('distill, match', [
    (dict(kd=dict(type='HeadClassificationKD', student_model='nobody',
                  teacher_model='student')), "one of \\['student', 'peer'\\]"),
    (dict(kd=dict(type='HeadClassificationKD', student_model='peer',
                  teacher_model='peer')), 'both its student and its teacher'),
    (dict(kd=dict(type='HeadClassificationKD', teacher_model='nobody')),
     "its teachers are \\['peer', 'student'\\]"),
])
def test_bad_student_and_teacher_models_are_build_errors(det_scope, distill,
                                                         match):
    with pytest.raises(ValueError, match=match):
        _dml(distill=distill)


def test_a_peer_term_reads_the_student_by_default(det_scope):
    model = _dml(distill=dict(kd=dict(type='HeadClassificationKD',
                                      student_model='peer')))
    assert model.distill_terms['kd'].teacher_choice.names == ['student']


def test_a_frozen_teacher_cannot_be_a_student(det_teacher_ckpt, tmp_path):
    frozen = dict(config=dict(default_scope='mmdet',
                              model=tiny_retinanet(16, 32)),
                  checkpoint=det_teacher_ckpt)
    with pytest.raises(ValueError, match='must name a model that learns'):
        Distiller(student=tiny_retinanet(8, 16),
                  teachers=dict(big=frozen),
                  distill=dict(kd=dict(type='HeadClassificationKD',
                                       student_model='big')),
                  probe_size=(SIZE, SIZE))


@pytest.mark.parametrize('extra', [dict(inputs=dict(scale=2.0)),
                                   dict(autocast=True), dict(decay=0.9)])
def test_bad_peer_settings_are_refused_before_building(det_scope, extra):
    with pytest.raises(ValueError, match='is a peer'):
        _dml(dict(PEER, **extra))


def test_a_peer_checkpoint_is_loaded_after_init_weights(det_scope,
                                                        tmp_path):
    ckpt = save_teacher(tiny_retinanet(16, 32), str(tmp_path / 'p.pth'),
                        'mmdet')
    model = _dml(dict(PEER, checkpoint=ckpt))
    model.init_weights()
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    for key, value in model.slots['peer'].module.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_detached_records_keep_values_and_owners_but_no_graph():
    weight = torch.ones(3, requires_grad=True)
    owner = torch.nn.Linear(1, 1)
    out = weight * 2
    calls = MethodCalls(forward=[MethodCall(owner, 'forward', (out, ),
                                            dict(x=[out]), (out, out))])
    record = dict(a=[out, (out, 'x')], calls=calls)
    detached = detach_record(record)
    assert not detached['a'][0].requires_grad
    assert detached['a'][1][1] == 'x'
    call = detached['calls'].last('forward')
    assert call.owner is owner and not call.args[0].requires_grad
    assert not call.kwargs['x'][0].requires_grad
    assert torch.equal(call.result[1], out)
    assert out.requires_grad  # the student's own record is untouched


def _steps(model, optim, hub, iterations, batches):
    for iteration in iterations:
        hub.update_info('iter', iteration)
        loss, _ = model.parse_losses(model.loss(*batches[iteration]))
        optim.zero_grad()
        loss.backward()
        optim.step()


def test_resume_restores_both_models_bit_exactly(det_scope, message_hub):
    torch.manual_seed(0)
    model = _dml().train()
    batches = [_batch(model) for _ in range(4)]
    optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    _steps(model, optim, message_hub, range(2), batches)
    saved = copy.deepcopy(get_state_dict(model))
    saved_optim = copy.deepcopy(optim.state_dict())
    _steps(model, optim, message_hub, range(2, 4), batches)
    torch.manual_seed(99)
    resumed = _dml().train()
    load_state_dict(resumed, saved, strict=True)
    optim2 = torch.optim.SGD(resumed.parameters(), lr=0.01, momentum=0.9)
    optim2.load_state_dict(saved_optim)
    _steps(resumed, optim2, message_hub, range(2, 4), batches)
    final, again = model.state_dict(), resumed.state_dict()
    assert final.keys() == again.keys()
    assert any(k.startswith('trainable_slots.peer.') for k in final)
    for key in final:
        assert torch.equal(final[key], again[key]), key




def test_any_peer_exports_as_a_plain_model(det_scope, tmp_path):
    from mmengine.registry import MODELS
    model = _dml()
    checkpoint = dict(state_dict=get_state_dict(model), meta={})
    tool = extract_tool()
    peer = tool.extract_student(checkpoint, tool.model_prefix('peer'))
    plain = MODELS.build(tiny_retinanet(16, 32))
    plain.load_state_dict(peer['state_dict'], strict=True)
    student = tool.extract_student(checkpoint)
    assert not any(k.startswith('trainable_slots') for k in
                   student['state_dict'])
    MODELS.build(tiny_retinanet(8, 16)).load_state_dict(
        student['state_dict'], strict=True)
    with pytest.raises(ValueError, match=r"besides the student: \['peer'\]"):
        tool.extract_student(checkpoint, tool.model_prefix('peeer'))


def _dml_seg_runner(work_dir, max_iters, **kwargs):
    """A Runner training a tiny PSPNet with a peer of another width (pixel
    KD both ways), checkpoints every 2 iterations."""
    from mmengine.runner import Runner
    from test_adversarial_training import SIZE as SEG_SIZE
    from test_adversarial_training import _loader
    student, peer = tiny_pspnet(8, 16), tiny_pspnet(16, 32)
    # no dropout: MMEngine does not restore the RNG state on resume
    for model in (student, peer):
        model['decode_head']['dropout_ratio'] = 0.0
    pixel = dict(type='PixelwiseKD', student='decode_head.conv_seg',
                 teacher='decode_head.conv_seg')
    torch.manual_seed(0)  # the same initial weights in every run
    model = Distiller(
        student=student,
        teachers=dict(peer=dict(role='peer', config=dict(
            default_scope='mmseg', model=peer))),
        distill=dict(to_student=dict(pixel, teacher_model='peer'),
                     to_peer=dict(pixel, student_model='peer',
                                  teacher_model='student')),
        probe_size=(SEG_SIZE, SEG_SIZE))
    return Runner(
        model=model, work_dir=str(work_dir),
        experiment_name=f'dml-{osp.basename(str(work_dir))}-{max_iters}',
        train_dataloader=_loader(),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        log_processor=dict(by_epoch=False), randomness=dict(seed=0),
        default_scope='mmseg', **kwargs)


SGD = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))


def test_dml_resume_through_the_runner_is_bit_exact(tmp_path, seg_scope,
                                                    runner_state_restored):
    straight = _dml_seg_runner(tmp_path / 'straight', 4, optim_wrapper=SGD)
    straight.train()
    first = _dml_seg_runner(tmp_path / 'split', 2, optim_wrapper=SGD)
    first.train()
    saved = torch.load(tmp_path / 'split' / 'iter_2.pth', weights_only=True)
    # the peer's weights and its momentum buffers are in the checkpoint
    assert any(k.startswith('trainable_slots.peer.decode_head')
               for k in saved['state_dict'])
    params = dict(first.model.named_parameters())
    assert len(saved['optimizer']['state']) == len(params)
    second = _dml_seg_runner(
        tmp_path / 'split', 4, optim_wrapper=SGD, resume=True,
        load_from=str(tmp_path / 'split' / 'iter_2.pth'))
    second.train()
    assert second.iter == 4
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # both models moved
    assert not torch.equal(
        a['trainable_slots.peer.decode_head.conv_seg.weight'],
        saved['state_dict']['trainable_slots.peer.decode_head.conv_seg.'
                            'weight'])


def test_dml_trains_under_amp_through_the_runner(tmp_path, seg_scope,
                                                  monkeypatch,
                                                  runner_state_restored):
    """``--amp``'s wrapper (its CUDA check bypassed, as in test_amp.py):
    both peers run their forward in bfloat16, keep float32 weights, and
    both move."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    runner = _dml_seg_runner(tmp_path, 2, optim_wrapper=dict(
        type='AmpOptimWrapper', dtype='bfloat16',
        optimizer=dict(type='SGD', lr=0.01)))
    model = runner.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dtypes = {'student': [], 'peer': []}
    modules = dict(student=model.student.decode_head.conv_seg,
                   peer=model.trainable_slots['peer'].decode_head.conv_seg)
    handles = [module.register_forward_hook(
        lambda m, args, out, name=name: dtypes[name].append(out.dtype))
        for name, module in modules.items()]
    try:
        runner.train()
    finally:
        for handle in handles:
            handle.remove()
    assert set(dtypes['student']) == {torch.bfloat16}
    assert set(dtypes['peer']) == {torch.bfloat16}
    for key in ('loss_distill_to_student', 'loss_distill_to_peer', 'loss'):
        value = runner.message_hub.get_scalar(f'train/{key}').current()
        assert value > 0 and torch.isfinite(torch.tensor(value)), key
    after = model.state_dict()
    for key in ('student.decode_head.conv_seg.weight',
                'trainable_slots.peer.decode_head.conv_seg.weight'):
        assert after[key].dtype == torch.float32
        assert not torch.equal(before[key], after[key]), key
