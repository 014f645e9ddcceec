"""CrossKD: cross-head predictions through the frozen teacher head."""
import copy

import pytest
import torch
from conftest import save_teacher
from tiny_heads import det_batch, FAMILIES, tiny_retina

from mmkd import Distiller
from mmkd.losses import CrossHeadKD
from mmkd.losses.cross_head import match_channel_statistics

CROSS_FAMILIES = ('retina', 'atss', 'gfl', 'fcos')


def test_match_channel_statistics():
    torch.manual_seed(0)
    student = torch.randn(2, 3, 4, 5) * 3 + 1
    teacher = torch.randn(2, 3, 4, 5) * torch.tensor([1., 2, 5])[
        None, :, None, None] - 2
    out = match_channel_statistics(student, teacher, eps=0.0)
    dims = (0, 2, 3)
    assert torch.allclose(out.mean(dims), teacher.mean(dims), atol=1e-5)
    assert torch.allclose(out.std(dims), teacher.std(dims), atol=1e-5)
    # an affine map of the student's channels: its shape is kept
    s = (student - student.mean(dims, keepdim=True)) / \
        student.std(dims, keepdim=True)
    o = (out - out.mean(dims, keepdim=True)) / out.std(dims, keepdim=True)
    assert torch.allclose(s, o, atol=1e-5)


def _distiller(tmp_path, make, same_weights, **term):
    ckpt = save_teacher(make(), str(tmp_path / 't.pth'), 'mmdet')
    student = make()
    model = Distiller(
        student=student,
        teacher=dict(config=dict(default_scope='mmdet', model=make()),
                     checkpoint=ckpt),
        distill=dict(cross=dict(type='CrossHeadKD', **term)),
        probe_size=(64, 96))
    if same_weights:
        model.student.load_state_dict(model.teacher.state_dict())
    return model


@pytest.mark.parametrize('family', CROSS_FAMILIES)
def test_a_student_equal_to_its_teacher_has_zero_loss(tmp_path, det_scope,
                                                      family):
    """Same weights, same mode: the cross head is the teacher's own head,
    so both its class and its box predictions equal the teacher's."""
    model = _distiller(tmp_path, FAMILIES[family], True, reuse_index=1)
    model.eval()  # batch norms as in the teacher
    losses = model.loss(*det_batch())
    # up to the eps of the renormalisation
    assert losses['loss_distill_cross'].abs().item() < 1e-3
    # a different student gives a positive loss
    other = _distiller(tmp_path, FAMILIES[family], False, reuse_index=1)
    torch.manual_seed(1)
    for p in other.student.bbox_head.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    losses = other.train().loss(*det_batch())
    assert losses['loss_distill_cross'].item() > 0.05


def test_gradients_reach_the_student_through_the_frozen_teacher(
        tmp_path, det_scope):
    model = _distiller(tmp_path, FAMILIES['gfl'], False,
                       reuse_index=1).train()
    term = model.distill_terms.cross
    assert term.reg_loss == 'kl' and term.reg_weight == 4.0
    loss = model.loss(*det_batch())['loss_distill_cross']
    head = model.student.bbox_head
    grads = torch.autograd.grad(
        loss, [head.cls_convs[0].conv.weight, head.reg_convs[0].conv.weight],
        retain_graph=True)
    assert all(g.abs().sum() > 0 for g in grads)
    # the student's own predictors are not on the cross path
    assert torch.autograd.grad(loss, head.gfl_cls.weight,
                               allow_unused=True)[0] is None
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())


def test_giou_for_anchor_heads_and_build_errors(tmp_path, det_scope):
    model = _distiller(tmp_path, tiny_retina, False, reuse_index=1)
    assert model.distill_terms.cross.reg_loss == 'giou'
    assert model.distill_terms.cross.reg_weight == 1.0
    with pytest.raises(KeyError, match="no module 'cls_convs.1'"):
        _distiller(tmp_path, tiny_retina, False, reuse_index=2)
    with pytest.raises(TypeError, match='needs GFL'):
        _distiller(tmp_path, tiny_retina, False, reuse_index=1,
                   reg_loss='kl')
    with pytest.raises(TypeError, match='not RPNHead'):
        _distiller(tmp_path, FAMILIES['rpn'], False, reuse_index=0)
    with pytest.raises(ValueError, match='reuse_index'):
        CrossHeadKD(reuse_index=-1)
    with pytest.raises(ValueError, match='reg_loss'):
        CrossHeadKD(reg_loss='l1')


def test_reuse_index_zero_starts_from_the_fpn(tmp_path, det_scope):
    model = _distiller(tmp_path, tiny_retina, False, reuse_index=0).train()
    loss = model.loss(*det_batch())['loss_distill_cross']
    neck = model.student.neck.fpn_convs[0].conv.weight
    assert torch.autograd.grad(loss, neck)[0].abs().sum() > 0
    copy.deepcopy(model)  # EMA copies keep working with the extra records


def test_heads_of_different_width_are_a_build_error(tmp_path, det_scope):
    ckpt = save_teacher(tiny_retina(32, 16), str(tmp_path / 't.pth'),
                        'mmdet')
    with pytest.raises(ValueError,
                       match=r'cls_convs.0.forward.*\(2, 8, 8, 12\), \(2, 32'):
        Distiller(student=tiny_retina(8, 8),
                  teacher=dict(config=dict(default_scope='mmdet',
                                           model=tiny_retina(32, 16)),
                               checkpoint=ckpt),
                  distill=dict(cross=dict(type='CrossHeadKD',
                                          reuse_index=1)),
                  probe_size=(64, 96))
