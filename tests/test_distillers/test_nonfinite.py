"""Non-finite losses stop (or, opted in, skip) the step before it is taken;
bad term arguments and NaN teachers fail when the distiller is built."""
import math

import pytest
import torch
from conftest import save_teacher, tiny_retinanet
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from test_distiller import _batch, _det_distiller

from mmkd import Distiller
from mmkd.distillers.nonfinite import (NonFiniteLossError,
                                       NonFiniteLossGuard, nonfinite_names)


def _data(model):
    inputs, samples = _batch(model)
    return dict(inputs=inputs, data_samples=samples)


def _poison_adaptor(model):
    """NaN in the adaptor: only loss_distill_fpn goes non-finite."""
    with torch.no_grad():
        model.distill_terms.fpn.adaptors[0].conv.conv.weight.fill_(math.nan)


def _student_state(model):
    """The student's parameters (batch-norm statistics move in any forward
    pass, as in a step skipped by mixed precision's loss scaler)."""
    return {k: v.detach().clone()
            for k, v in model.student.named_parameters()}


def _adamw(model):
    return OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-2))


def test_nonfinite_names_lists_bad_losses_in_order():
    log_vars = dict(loss=torch.tensor(math.nan),
                    loss_cls=torch.tensor(1.0),
                    loss_distill_a=torch.tensor(math.inf),
                    acc=torch.tensor(math.nan),
                    loss_distill_b=torch.tensor(math.nan))
    assert nonfinite_names(log_vars) == ['loss_distill_a', 'loss_distill_b']
    assert nonfinite_names(dict(loss=torch.tensor(2.0),
                                loss_cls=torch.tensor(2.0))) == []


@pytest.fixture
def runner_at_iteration_41():
    """A message hub as the Runner keeps it (0-based 'iter' = 41), removed
    afterwards so no global state outlives the test."""
    hub = MessageHub.get_instance('test_nonfinite_hub')
    hub.update_info('iter', 41)
    yield
    del MessageHub._instance_dict['test_nonfinite_hub']


def test_stop_raises_before_the_step_naming_loss_and_iteration(
        det_teacher_ckpt, runner_at_iteration_41):
    model = _det_distiller(det_teacher_ckpt).train()
    _poison_adaptor(model)
    before = _student_state(model)
    with pytest.raises(NonFiniteLossError) as info:
        model.train_step(_data(model), _adamw(model))
    message = str(info.value)
    assert 'loss_distill_fpn' in message and 'distillation term' in message
    # numbered from 1 as in MMEngine's log lines
    assert 'Iteration 42:' in message
    assert "nonfinite_loss='skip'" in message
    assert 'loss_cls' not in message  # the task losses were finite
    for key, value in model.student.named_parameters():
        assert torch.equal(value, before[key]), key


def test_task_loss_is_named_as_such(det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt).train()
    with torch.no_grad():
        model.student.bbox_head.retina_cls.weight.fill_(math.nan)
    with pytest.raises(NonFiniteLossError, match='task loss loss_cls'):
        model.train_step(_data(model), _adamw(model))


def test_skip_leaves_weights_and_optimizer_state_untouched(
        det_teacher_ckpt):
    model = _det_distiller(det_teacher_ckpt,
                           nonfinite_loss='skip').train()
    optim_wrapper = _adamw(model)
    data = _data(model)
    _poison_adaptor(model)
    student_before = _student_state(model)
    log_vars = model.train_step(data, optim_wrapper)
    assert float(log_vars['nonfinite_skipped']) == 1
    assert math.isnan(float(log_vars['loss_distill_fpn']))
    for key, value in model.student.named_parameters():
        assert torch.equal(value, student_before[key]), key
    assert not optim_wrapper.optimizer.state  # no moment was touched
    assert not model.nonfinite_guard._skipper.armed  # one-shot hook gone
    # the next, finite step trains as usual and the count stays
    torch.nn.init.normal_(
        model.distill_terms.fpn.adaptors[0].conv.conv.weight, std=0.01)
    log_vars = model.train_step(data, optim_wrapper)
    assert float(log_vars['nonfinite_skipped']) == 1
    assert math.isfinite(float(log_vars['loss']))
    changed = [k for k, v in model.student.named_parameters()
               if not torch.equal(v, student_before[k])]
    assert changed


def test_skip_spares_other_optimizers():
    """The one-shot hook only drops the skipped model's gradients."""
    guard = NonFiniteLossGuard('skip')
    skipped, other = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    log_vars = dict(loss=torch.tensor(math.nan),
                    loss_x=torch.tensor(math.nan))
    replacement = guard.check(skipped, log_vars['loss'], log_vars, 3)
    replacement.backward()
    assert all(torch.equal(p.grad, torch.zeros_like(p))
               for p in skipped.parameters())
    other_optimizer = torch.optim.SGD(other.parameters(), lr=1.0)
    other(torch.ones(1, 2)).sum().backward()
    before = other.weight.clone()
    other_optimizer.step()  # not the skipped model's: steps as usual
    assert not torch.equal(other.weight, before)
    assert guard._skipper.armed
    optimizer = torch.optim.SGD(skipped.parameters(), lr=1.0)
    optimizer.step()
    assert not guard._skipper.armed
    assert all(p.grad is None for p in skipped.parameters())


def test_unknown_policy_is_rejected(det_teacher_ckpt):
    with pytest.raises(ValueError, match="nonfinite_loss must be one of"):
        _det_distiller(det_teacher_ckpt, nonfinite_loss='ignore')


@pytest.mark.parametrize('argument, value, error, words', [
    ('loss_weight', math.nan, ValueError, 'finite number >= 0'),
    ('loss_weight', -1.0, ValueError, 'finite number >= 0'),
    ('loss_weight', math.inf, ValueError, 'finite number >= 0'),
    ('loss_weight', 'abc', TypeError, 'must be a number'),
    ('warmup_iters', -5, ValueError, '>= 0 iterations'),
    ('warmup_iters', 2.5, TypeError, 'whole number'),
])
def test_bad_term_arguments_fail_at_build_naming_term_and_argument(
        det_teacher_ckpt, argument, value, error, words):
    distill = dict(fpn=dict(type='FeatureImitation', student='neck',
                            teacher='neck', **{argument: value}))
    with pytest.raises(error) as info:
        _det_distiller(det_teacher_ckpt, distill=distill)
    message = str(info.value)
    assert "Term 'fpn'" in message and argument in message
    assert words in message


@pytest.mark.parametrize('temperature', [0, -1.0, math.nan, 'hot'])
def test_bad_temperature_fails_at_build(seg_teacher_ckpt, temperature):
    from test_distiller import _seg_distiller
    distill = dict(kd=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                           teacher='decode_head.conv_seg',
                           temperature=temperature))
    with pytest.raises((ValueError, TypeError),
                       match=r"Term 'kd'.*temperature"):
        _seg_distiller(seg_teacher_ckpt, distill)


@pytest.mark.parametrize('size', [(0, 64), (64,), 'big', (64.0, 64)])
def test_bad_probe_size_is_rejected(det_teacher_ckpt, size):
    with pytest.raises(ValueError, match='probe_size must be'):
        Distiller(student=tiny_retinanet(8, 16),
                  teacher=dict(config=dict(default_scope='mmdet',
                                           model=tiny_retinanet(16, 32)),
                               checkpoint=det_teacher_ckpt),
                  distill=dict(fpn=dict(type='FeatureImitation',
                                        student='neck', teacher='neck')),
                  probe_size=size)


def test_nan_teacher_checkpoint_fails_at_build_naming_module(
        tmp_path, det_scope):
    path = save_teacher(tiny_retinanet(16, 32), str(tmp_path / 'nan.pth'),
                        'mmdet')
    checkpoint = torch.load(path)
    key = 'neck.fpn_convs.1.conv.weight'
    checkpoint['state_dict'][key][0, 0, 0, 0] = math.nan
    torch.save(checkpoint, path)
    with pytest.raises(ValueError) as info:
        _det_distiller(path)
    message = str(info.value)
    assert 'gives NaN/inf at neck' in message and path in message
    assert key in message


@pytest.mark.parametrize('mask, words', [
    (dict(type='FGFIMask', thr=1.5), 'thr must be in'),
    (dict(type='FGFIMask', thr=math.nan), 'thr must be in'),
    (dict(type='GtBoxMask', bg_weight=-0.1), 'bg_weight must be'),
])
def test_bad_mask_arguments_fail_at_build(det_teacher_ckpt, mask, words):
    distill = dict(fpn=dict(type='FeatureImitation', student='neck',
                            teacher='neck', mask=mask))
    with pytest.raises(ValueError, match=f"Term 'fpn'.*{words}"):
        _det_distiller(det_teacher_ckpt, distill=distill)
