"""A frozen teacher's records cached per sample (``cache_outputs=True``)."""
import pytest
import torch
from conftest import tiny_pspnet, tiny_retinanet

from mmengine.structures import BaseDataElement

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher_cache import (MAX_VARIANTS, TeacherOutputCache,
                                           check_batch_first, record_bytes,
                                           stack_samples, take_sample)
from mmkd.recorders import MethodCall

# neck features, dense head calls and class KD: the recipe's kinds of record
DET_TERMS = dict(
    fpn=dict(type='FeatureImitation', student='neck', teacher='neck'),
    cls=dict(type='HeadClassificationKD', temperature=2.0, loss_weight=1.0))


def _det(ckpt, cache_outputs=True, distill=None):
    return Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=ckpt, cache_outputs=cache_outputs),
        distill=distill or DET_TERMS, probe_size=(64, 64))


def _images(model, count, size=64, seed=0):
    torch.manual_seed(seed)
    inputs, samples = make_probe_batch(model.student, (size, size),
                                       batch_size=count)
    for i, sample in enumerate(samples):
        sample.set_metainfo(dict(img_path=f'img_{i}.png'))
    return torch.randn_like(inputs), samples


def _distill_losses(model, inputs, samples):
    losses = model.loss(inputs, samples)
    return {k: v.detach().clone() for k, v in losses.items()
            if k.startswith('loss_distill')}


def test_take_and_stack_restore_a_batch_of_calls():
    feats = (torch.randn(3, 4, 5, 5), torch.randn(3, 4, 2, 2))
    result = ([torch.randn(3, 6, 5, 5)], [torch.randn(3, 2, 5, 5)])
    call = MethodCall(object(), 'forward', (feats, ), {}, result, 'forward')
    record = {'neck': feats, 'head': [call], 'scale': 1.0}
    samples = [take_sample(record, i) for i in (2, 0)]
    assert samples[0]['neck'][0].shape == (1, 4, 5, 5)
    # a copy: the kept sample holds no view of the batch's storage
    assert samples[0]['neck'][0].untyped_storage().nbytes() == 4 * 25 * 4
    # the neck's outputs, also the head call's arguments, are kept once
    assert samples[0]['neck'][0] is samples[0]['head'][0].args[0][0]
    assert record_bytes(samples[0]) == 4 * (4 * 25 + 4 * 4 + 6 * 25 + 2 * 25)
    batch = stack_samples(samples, torch.device('cpu'))
    assert batch['neck'][1] is batch['head'][0].args[0][1]
    assert torch.equal(batch['neck'][1], feats[1][[2, 0]])
    stacked = batch['head'][0]
    assert stacked.owner is call.owner and stacked.key == 'forward'
    assert torch.equal(stacked.result[0][0], result[0][0][[2, 0]])
    assert torch.equal(stacked.args[0][0], feats[0][[2, 0]])
    assert batch['scale'] == 1.0


def test_records_that_are_not_batch_first_are_refused():
    check_batch_first((torch.zeros(2, 3), [torch.zeros(2)]), 2, 'neck')
    with pytest.raises(ValueError, match=r'shape \(6, 2\).*not batch-first'):
        check_batch_first([torch.zeros(6, 2)], 2, 'decoder')
    with pytest.raises(ValueError, match='object.*cannot be split'):
        check_batch_first([object()], 2, 'head')


def test_a_random_pipeline_stops_with_an_error():
    cache = TeacherOutputCache('teacher')
    sample = BaseDataElement(metainfo=dict(img_path='a.png'))
    for variant in range(MAX_VARIANTS):
        keys = cache.keys(torch.full((1, 3, 2, 2), float(variant)), [sample])
        cache.store(keys, {})
    # the same inputs again are hits, not new variants
    cache.keys(torch.zeros(1, 3, 2, 2), [sample])
    with pytest.raises(RuntimeError, match="a.png.*3 different.*random"):
        cache.keys(torch.full((1, 3, 2, 2), 9.0), [sample])


def test_cached_losses_equal_the_teacher_run_and_skip_its_forward(
        det_teacher_ckpt):
    plain, cached = _det(det_teacher_ckpt, False), _det(det_teacher_ckpt)
    cached.student.load_state_dict(plain.student.state_dict())
    cached.distill_terms.load_state_dict(plain.distill_terms.state_dict())
    plain.train(), cached.train()
    inputs, samples = _images(plain, 4)
    calls = []
    cached.teacher.register_forward_pre_hook(
        lambda m, args: calls.append(args[0].shape[0]))
    # first epoch: the teacher runs on the batch and the cache fills
    first = _distill_losses(cached, inputs[:2], samples[:2])
    assert calls == [2] and len(cached.slots['teacher'].cache) == 2
    # a batch mixing seen and unseen images runs the teacher on the unseen
    order = [3, 0, 2, 1]
    mixed = _distill_losses(cached, inputs[order],
                            [samples[i] for i in order])
    assert calls == [2, 2]
    # later epochs: no teacher forward, the same losses as running it
    again = _distill_losses(cached, inputs[order],
                            [samples[i] for i in order])
    assert calls == [2, 2]
    reference = _distill_losses(plain, inputs[order],
                                [samples[i] for i in order])
    for name, value in reference.items():
        torch.testing.assert_close(mixed[name], value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(again[name], value, rtol=1e-5, atol=1e-6)
    assert set(first) == set(reference)
    cache = cached.slots['teacher'].cache
    assert (cache.hits, cache.misses) == (2 + 4, 2 + 2)
    assert cache.bytes_per_sample > 0


def test_cached_segmentation_logits(seg_teacher_ckpt):
    model = Distiller(
        student=tiny_pspnet(8, 16),
        teacher=dict(config=dict(default_scope='mmseg',
                                 model=tiny_pspnet(16, 32)),
                     checkpoint=seg_teacher_ckpt, cache_outputs=True),
        distill=dict(logits=dict(type='ChannelWiseKD',
                                 student='decode_head.conv_seg',
                                 teacher='decode_head.conv_seg')),
        probe_size=(32, 32))
    model.train()
    inputs, samples = _images(model, 2, size=32)
    torch.manual_seed(1)  # the same dropout in the student's head
    first = model.loss(inputs, samples)['loss_distill_logits']
    torch.manual_seed(1)
    again = model.loss(inputs, samples)['loss_distill_logits']
    torch.testing.assert_close(first, again)
    again.backward()  # the cached records carry no graph of their own
    assert model.slots['teacher'].cache.hits == 2


def test_cache_outputs_is_checked_before_building(det_teacher_ckpt):
    with pytest.raises(ValueError, match='cache_outputs must be True or'):
        _det(det_teacher_ckpt, cache_outputs='yes')
    with pytest.raises(ValueError, match='EMA teacher.*cannot be cached'):
        Distiller(student=tiny_retinanet(8, 16),
                  teachers=dict(ema=dict(role='ema', cache_outputs=True)),
                  distill=DET_TERMS, probe_size=(64, 64))
