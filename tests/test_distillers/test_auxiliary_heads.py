"""BYOT self-distillation: auxiliary heads as a trainable ``auxiliary`` slot
(:class:`mmkd.distillers.auxiliary.AuxiliaryHeads`)."""
import copy

import pytest
import torch
from conftest import tiny_pspnet, tiny_retinanet
from mmengine.logging import MessageHub
from mmengine.registry import MODELS
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from slot_helpers import extract_tool, grad_owners, random_batch

from mmkd import Distiller

SIZE = 64


def _byot_det(heads=None, distill=None):
    """A tiny RetinaNet (backbone outputs C3-C5, FPN P3-P5) with one
    auxiliary head on C3-C4 (the default), class KD from the deepest head
    and a neck hint, as BYOT."""
    aux = dict(role='auxiliary', type='mmkd.AuxiliaryHeads')
    if heads is not None:
        aux['heads'] = heads
    return Distiller(
        student=tiny_retinanet(8, 16),
        teachers=dict(byot=aux),
        distill=distill or dict(
            cls=dict(type='HeadClassificationKD', student_model='byot',
                     head='heads.0', teacher_model='student',
                     teacher_head='bbox_head', loss_weight=0.3),
            hint=dict(type='FeatureImitation', student_model='byot',
                      student='necks.0', teacher_model='student',
                      teacher='neck', loss_weight=0.03)),
        probe_size=(SIZE, SIZE))


def _byot_seg():
    return Distiller(
        student=tiny_pspnet(),
        teachers=dict(byot=dict(role='auxiliary',
                                type='mmkd.AuxiliaryHeads')),
        distill=dict(kd=dict(type='PixelwiseKD', student_model='byot',
                             student='heads.0.conv_seg',
                             teacher_model='student',
                             teacher='decode_head.conv_seg',
                             temperature=3.0, loss_weight=0.3)),
        probe_size=(SIZE, SIZE))


def _batch(model, seed=3):
    return random_batch(model, SIZE, seed)


@pytest.fixture
def message_hub(runner_state_restored):
    yield MessageHub.get_instance('mmkd_test_auxiliary_heads')


def _grad_owners(model, loss):
    """The top-level parts (``student.backbone``, ``byot``, ...) that
    receive a non-zero gradient from ``loss``."""
    return grad_owners(model, loss, lambda name: 'byot' if name.startswith(
        'trainable_slots.') else '.'.join(name.split('.')[:2]))


def test_det_auxiliary_head_trains_on_shallow_stages(det_scope,
                                                     message_hub):
    model = _byot_det().train()
    aux = model.slots['byot'].module
    # the default reads C3-C4 (outputs 0-1 of out_indices 1-3) of the
    # student's backbone through a light FPN of the student neck's levels
    assert aux.in_indices == [(0, 1)]
    losses = model.loss(*_batch(model))
    assert {'byot.heads.0.loss_cls', 'byot.heads.0.loss_bbox',
            'loss_distill_cls', 'loss_distill_hint'} <= set(losses)
    # the auxiliary task loss trains the auxiliary head and, through the
    # shared stages, the student's backbone; never the student's neck/head
    aux_task = sum(v for k, v in losses.items()
                   if k.startswith('byot.heads.0.'))
    assert _grad_owners(model, aux_task) == {'byot', 'student.backbone'}
    # the deepest head teaches: KD reaches the auxiliary side only
    owners = _grad_owners(model, losses['loss_distill_cls'])
    assert 'byot' in owners
    assert not owners & {'student.bbox_head', 'student.neck'}
    # (the hint's 1x1 adaptor is the term's own)
    assert _grad_owners(model, losses['loss_distill_hint']) <= {
        'byot', 'student.backbone', 'distill_terms.hint'}


def test_seg_auxiliary_head_reads_the_stage_before_the_students(
        seg_scope, message_hub):
    model = _byot_seg().train()
    aux_head = model.slots['byot'].module.heads[0]
    student_index = model.student.decode_head.in_index
    assert aux_head.in_index == student_index - 1
    losses = model.loss(*_batch(model))
    assert 'byot.heads.0.loss_ce' in losses
    owners = _grad_owners(model, losses['loss_distill_kd'])
    assert 'byot' in owners and 'student.decode_head' not in owners




@pytest.mark.parametrize('task', ['det', 'seg'])
def test_auxiliary_heads_are_absent_from_the_export(task, det_scope,
                                                    seg_scope):
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet' if task == 'det' else 'mmseg')
    model = _byot_det() if task == 'det' else _byot_seg()
    checkpoint = dict(state_dict=get_state_dict(model), meta={})
    assert any(k.startswith('trainable_slots.byot.')
               for k in checkpoint['state_dict'])
    student = extract_tool().extract_student(checkpoint)
    assert not any('byot' in k or k.startswith('trainable_slots')
                   for k in student['state_dict'])
    plain = MODELS.build(tiny_retinanet(8, 16) if task == 'det' else
                         tiny_pspnet())
    plain.load_state_dict(student['state_dict'], strict=True)


def _steps(model, optim, hub, iterations, batches):
    for iteration in iterations:
        hub.update_info('iter', iteration)
        loss, _ = model.parse_losses(model.loss(*batches[iteration]))
        optim.zero_grad()
        loss.backward()
        optim.step()


def test_resume_restores_student_and_auxiliary_heads_bit_exactly(
        det_scope, message_hub):
    torch.manual_seed(0)
    model = _byot_det().train()
    batches = [_batch(model, seed) for seed in range(4)]
    optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    _steps(model, optim, message_hub, range(2), batches)
    saved = copy.deepcopy(get_state_dict(model))
    saved_optim = copy.deepcopy(optim.state_dict())
    _steps(model, optim, message_hub, range(2, 4), batches)
    torch.manual_seed(99)
    resumed = _byot_det().train()
    load_state_dict(resumed, saved, strict=True)
    optim2 = torch.optim.SGD(resumed.parameters(), lr=0.01, momentum=0.9)
    optim2.load_state_dict(saved_optim)
    _steps(resumed, optim2, message_hub, range(2, 4), batches)
    final, again = model.state_dict(), resumed.state_dict()
    assert final.keys() == again.keys()
    for key in final:
        assert torch.equal(final[key], again[key]), key


@pytest.mark.parametrize('heads, error, match', [
    ([dict(source='backbone.nope')], KeyError, 'backbone.nope'),
    ([dict(in_indices=(7, ))], ValueError, 'in_indices'),
    ([dict(in_indices=(1, 2))], ValueError, 'levels'),  # from stride 16
    ([dict(colour='red')], ValueError, 'keys among'),
    ([], ValueError, 'non-empty'),
])
def test_bad_auxiliary_heads_are_build_errors(det_scope, heads, error,
                                              match):
    with pytest.raises(error, match=match):
        _byot_det(heads=heads)
