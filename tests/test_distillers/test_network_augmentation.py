"""NetAug: wider models sharing the student's weights, as an ``augmented``
slot (:class:`mmkd.distillers.network_augmentation.NetworkAugmentation`)."""
import copy

import pytest
import torch
from conftest import tiny_pspnet, tiny_retinanet
from mmengine.logging import MessageHub
from mmengine.registry import MODELS
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from slot_helpers import extract_tool, random_batch

from mmkd import Distiller
from mmkd.distillers.network_augmentation import widen_config

SIZE = 64


def _netaug(student=None, **slot):
    cfg = dict(role='augmented', type='mmkd.NetworkAugmentation')
    cfg.update(slot)
    model = Distiller(student=student or tiny_retinanet(8, 16),
                      teachers=dict(netaug=cfg), distill=dict(),
                      probe_size=(SIZE, SIZE))
    model.init_weights()
    return model


def _batch(model, seed=3):
    return random_batch(model, SIZE, seed)


@pytest.fixture
def message_hub(runner_state_restored):
    yield MessageHub.get_instance('mmkd_test_network_augmentation')


def _leading(tensor, shape):
    return tensor[tuple(slice(0, s) for s in shape)]


def test_widen_config_scales_the_widths_only(det_scope, seg_scope):
    wide = widen_config(tiny_retinanet(8, 16), 2.0, 'mmdet')
    assert wide['backbone']['base_channels'] == 16
    assert wide['backbone']['depth'] == 18
    assert wide['neck']['in_channels'] == [32, 64, 128]
    assert wide['neck']['out_channels'] == 32
    assert wide['bbox_head']['in_channels'] == 32
    assert wide['bbox_head']['feat_channels'] == 32
    assert wide['bbox_head']['num_classes'] == \
        tiny_retinanet(8, 16)['bbox_head']['num_classes']
    seg = tiny_pspnet()
    seg['backbone'].pop('stem_channels', None)
    # a width the config leaves out widens from the class default
    # (mmseg's ResNetV1c stem_channels=64)
    assert widen_config(seg, 1.5, 'mmseg')['backbone']['stem_channels'] == 96


def test_the_student_is_the_leading_slice_before_and_after_a_step(
        det_scope, message_hub):
    model = _netaug(width_multipliers=(1.5, 2.0)).train()
    aug = model.trainable_slots['netaug']
    student = dict(model.student.named_parameters())
    for index in range(2):
        wide = aug.bind(index)
        for owner, attr, name in aug._attrs[index]:
            value = getattr(owner, attr)
            assert torch.equal(_leading(value, student[name].shape),
                               student[name])
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    message_hub.update_info('iter', 0)
    loss, _ = model.parse_losses(model.loss(*_batch(model)))
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    optim.zero_grad()
    loss.backward()
    optim.step()
    moved = [k for k, v in model.named_parameters()
             if not torch.equal(before[k], v.detach())]
    assert any(k.startswith('student.') for k in moved)
    assert any(k.startswith('trainable_slots.netaug.extras.') for k in moved)
    # one step moved both consistently: the wide weights' leading slice is
    # still exactly the student's, the extra channels moved on their own
    weights = aug.shared_weights()
    for name, value in model.student.named_parameters():
        assert torch.equal(_leading(weights[name], value.shape), value)
    wide = aug.bind(aug.draw(0, 2))
    assert wide is aug.wide_models[aug.draw(0, 2)]


def test_the_wide_loss_trains_student_and_extras_the_student_loss_only_it(
        det_scope, message_hub):
    model = _netaug().train()
    message_hub.update_info('iter', 0)
    losses = model.loss(*_batch(model))
    wide = sum(sum(v) if isinstance(v, list) else v
               for k, v in losses.items() if k.startswith('netaug.wide.'))
    own = sum(sum(v) for k, v in losses.items() if k in ('loss_cls',
                                                        'loss_bbox'))

    def owners(loss):
        model.zero_grad()
        loss.backward(retain_graph=True)
        return {name.split('.')[0] for name, p in model.named_parameters()
                if p.grad is not None and bool(p.grad.abs().sum() > 0)}

    assert owners(wide) == {'student', 'trainable_slots'}
    assert owners(own) == {'student'}


def test_batch_norm_statistics_stay_separate(seg_scope, message_hub):
    model = _netaug(student=tiny_pspnet()).train()
    wide = model.trainable_slots['netaug'].wide_models[0]
    # (not the first stem norm: its leading channels see the same input)
    student_bn = model.student.backbone.layer1[0].bn1
    wide_bn = wide.backbone.layer1[0].bn1
    assert wide_bn.running_mean.shape[0] == 2 * \
        student_bn.running_mean.shape[0]
    student_stats = student_bn.running_mean.clone()
    wide_stats = wide_bn.running_mean.clone()
    message_hub.update_info('iter', 0)
    model.loss(*_batch(model))
    assert not torch.equal(student_bn.running_mean, student_stats)
    assert not torch.equal(wide_bn.running_mean, wide_stats)
    assert not torch.equal(_leading(wide_bn.running_mean,
                                    student_bn.running_mean.shape),
                           student_bn.running_mean)


def test_the_width_is_drawn_from_the_iteration(det_scope):
    model = _netaug(width_multipliers=(1.25, 1.5, 2.0))
    aug = model.trainable_slots['netaug']
    draws = [aug.draw(i, 3) for i in range(60)]
    assert draws == [aug.draw(i, 3) for i in range(60)]  # resumable
    assert set(draws) == {0, 1, 2}




def test_only_the_student_is_exported(det_scope):
    model = _netaug()
    checkpoint = dict(state_dict=get_state_dict(model), meta={})
    assert any(k.startswith('trainable_slots.netaug.extras.')
               for k in checkpoint['state_dict'])
    student = extract_tool().extract_student(checkpoint)
    assert not any(k.startswith('trainable_slots')
                   for k in student['state_dict'])
    MODELS.build(tiny_retinanet(8, 16)).load_state_dict(
        student['state_dict'], strict=True)


def _steps(model, optim, hub, iterations, batches):
    for iteration in iterations:
        hub.update_info('iter', iteration)
        loss, _ = model.parse_losses(model.loss(*batches[iteration]))
        optim.zero_grad()
        loss.backward()
        optim.step()


def test_resume_is_bit_exact(det_scope, message_hub):
    torch.manual_seed(0)
    model = _netaug(width_multipliers=(1.5, 2.0)).train()
    batches = [_batch(model, seed) for seed in range(4)]
    optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    _steps(model, optim, message_hub, range(2), batches)
    saved = copy.deepcopy(get_state_dict(model))
    saved_optim = copy.deepcopy(optim.state_dict())
    _steps(model, optim, message_hub, range(2, 4), batches)
    torch.manual_seed(99)
    resumed = _netaug(width_multipliers=(1.5, 2.0)).train()
    load_state_dict(resumed, saved, strict=True)
    optim2 = torch.optim.SGD(resumed.parameters(), lr=0.01, momentum=0.9)
    optim2.load_state_dict(saved_optim)
    _steps(resumed, optim2, message_hub, range(2, 4), batches)
    final, again = model.state_dict(), resumed.state_dict()
    assert final.keys() == again.keys()
    for key in final:
        assert torch.equal(final[key], again[key]), key


@pytest.mark.parametrize('slot, match', [
    (dict(width_multipliers=(0.5, )), 'above 1'),
    (dict(width_multipliers=()), 'above 1'),
    (dict(wide_configs=[tiny_retinanet(4, 8)]), 'at least'),
    (dict(wide_configs=[dict(tiny_retinanet(16, 32),
                             backbone=dict(tiny_retinanet(16, 32)['backbone'],
                                           depth=34))]),
     "only the wide model has parameter 'backbone.layer1.2"),
])
def test_wide_models_that_do_not_line_up_are_build_errors(det_scope, slot,
                                                          match):
    with pytest.raises(ValueError, match=match):
        _netaug(**slot)
