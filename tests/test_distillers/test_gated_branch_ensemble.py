"""ONE: branches on the student's trunk and their gated ensemble as a
trainable ``auxiliary`` slot
(:class:`mmkd.distillers.auxiliary.GatedBranchEnsemble`)."""

import pytest
import torch
from conftest import tiny_pspnet, tiny_retinanet
from mmengine.logging import MessageHub
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner.checkpoint import get_state_dict
from slot_helpers import extract_tool, grad_owners, random_batch
from tiny_heads import tiny_atss

from mmkd import Distiller
from mmkd.distillers.auxiliary import BranchGate, gated_sum

SIZE = 64


def _one_det(**slot):
    """A tiny RetinaNet with ONE's three branches (its head and two
    copies); the ensemble teaches the student's head and branch 0."""
    cfg = dict(role='auxiliary', type='mmkd.GatedBranchEnsemble',
               num_branches=3)
    cfg.update(slot)
    return Distiller(
        student=tiny_retinanet(8, 16),
        teachers=dict(one=cfg),
        distill=dict(
            to_student=dict(type='HeadClassificationKD', teacher_model='one',
                            head='bbox_head', teacher_head='ensemble',
                            temperature=3),
            to_branch=dict(type='HeadClassificationKD', student_model='one',
                           head='branches.0', teacher_model='one',
                           teacher_head='ensemble', temperature=3)),
        probe_size=(SIZE, SIZE))


def _one_seg():
    return Distiller(
        student=tiny_pspnet(),
        teachers=dict(one=dict(role='auxiliary',
                               type='mmkd.GatedBranchEnsemble',
                               num_branches=2)),
        distill=dict(kd=dict(type='PixelwiseKD',
                             student='decode_head.conv_seg',
                             teacher_model='one', teacher='ensemble',
                             temperature=3.0)),
        probe_size=(SIZE, SIZE))


def _batch(model, seed=3):
    return random_batch(model, SIZE, seed)


@pytest.fixture
def message_hub(runner_state_restored):
    yield MessageHub.get_instance('mmkd_test_gated_branch_ensemble')


def _grad_owners(model, loss):
    """The parts (``student.backbone``, ``branches.0``, ...) that receive
    a non-zero gradient from ``loss``."""
    def owner(name):
        parts = name.split('.')
        return '.'.join(parts[2:4] if parts[0] == 'trainable_slots' else
                        parts[:2])
    return grad_owners(model, loss, owner)


def test_gated_sum_is_the_per_image_weighted_sum():
    a = torch.ones(2, 1, 2, 2)
    b = torch.full((2, 1, 2, 2), 3.0)
    weights = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    out = gated_sum([a, b], weights)
    # image 0: 0.25 * 1 + 0.75 * 3 = 2.5; image 1: 1 * 1 + 0 * 3 = 1
    assert torch.allclose(out[0], torch.full((1, 2, 2), 2.5))
    assert torch.allclose(out[1], torch.ones(1, 2, 2))


def test_the_gate_starts_uniform_and_is_a_softmax_over_branches():
    gate = BranchGate(in_channels=4 + 2, num_branches=3)
    maps = [torch.randn(5, 4, 8, 8), torch.randn(5, 2, 4, 4)]
    assert torch.allclose(gate(maps), torch.full((5, 3), 1 / 3))
    torch.nn.init.normal_(gate.fc.weight)
    weights = gate(maps)
    assert weights.shape == (5, 3)
    assert torch.allclose(weights.sum(1), torch.ones(5))
    assert not torch.allclose(weights, torch.full((5, 3), 1 / 3))


def test_det_branches_ensemble_and_the_gradients_of_each_loss(
        det_scope, message_hub):
    model = _one_det().train()
    one = model.slots['one'].module
    assert len(one.branches) == 2  # the student's head is branch 0 of 3
    assert sum(p.numel() for p in one.ensemble.parameters()) == 0
    assert isinstance(one.ensemble, type(model.student.bbox_head))
    losses = model.loss(*_batch(model))
    assert {'one.branches.0.loss_cls', 'one.branches.1.loss_bbox',
            'one.ensemble.loss_cls', 'loss_distill_to_student',
            'loss_distill_to_branch'} <= set(losses)
    # the ensemble's task loss trains every branch, the student's head
    # included, the gate and the shared trunk
    ensemble = sum(sum(v) if isinstance(v, list) else v
                   for k, v in losses.items() if k.startswith('one.ensemble'))
    assert {'student.bbox_head', 'student.neck', 'branches.0', 'branches.1',
            'gate.fc'} <= _grad_owners(model, ensemble)
    # as a teacher the ensemble is detached: KD trains its student only
    to_student = _grad_owners(model, losses['loss_distill_to_student'])
    assert 'student.bbox_head' in to_student
    assert not any(o.startswith(('branches', 'gate')) for o in to_student)
    to_branch = _grad_owners(model, losses['loss_distill_to_branch'])
    assert 'branches.0' in to_branch
    assert not to_branch & {'student.bbox_head', 'branches.1', 'gate.fc'}


def test_seg_ensemble_is_the_gated_sum_of_the_branch_logits(
        seg_scope, message_hub):
    model = _one_seg().train()
    losses = model.loss(*_batch(model))
    assert {'one.branches.0.loss_ce', 'one.ensemble.loss_ce',
            'loss_distill_kd'} <= set(losses)
    owners = _grad_owners(model, losses['loss_distill_kd'])
    assert 'student.decode_head' in owners
    assert not any(o.startswith(('branches', 'gate')) for o in owners)




@pytest.mark.parametrize('task', ['det', 'seg'])
def test_only_the_students_branch_is_exported(task, det_scope, seg_scope):
    init_default_scope('mmdet' if task == 'det' else 'mmseg')
    model = _one_det() if task == 'det' else _one_seg()
    checkpoint = dict(state_dict=get_state_dict(model), meta={})
    assert any(k.startswith('trainable_slots.one.branches.')
               for k in checkpoint['state_dict'])
    student = extract_tool().extract_student(checkpoint)
    assert not any(k.startswith('trainable_slots')
                   for k in student['state_dict'])
    plain = MODELS.build(tiny_retinanet(8, 16) if task == 'det' else
                         tiny_pspnet())
    plain.load_state_dict(student['state_dict'], strict=True)


@pytest.mark.parametrize('slot, match', [
    (dict(num_branches=1), 'num_branches'),
    (dict(branch=tiny_atss(16)['bbox_head']), 'one class'),
])
def test_bad_ensembles_are_build_errors(det_scope, slot, match):
    with pytest.raises(ValueError, match=match):
        _one_det(**slot)
