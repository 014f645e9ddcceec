"""The optimizer-wrapper constructor of adversarial distillation and the
``--amp`` conversion of its config."""
import pytest
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

from conftest import save_teacher, tiny_pspnet

from mmkd import Distiller
from mmkd.optim import (AdversarialOptimWrapperConstructor, enable_amp,
                        uses_adversarial_constructor)

CONSTRUCTOR = 'mmkd.AdversarialOptimWrapperConstructor'


@pytest.fixture
def distiller(tmp_path, seg_scope):
    ckpt = save_teacher(tiny_pspnet(16, 32), str(tmp_path / 't.pth'),
                        'mmseg')
    return Distiller(
        student=tiny_pspnet(),
        teacher=dict(config=tiny_pspnet(16, 32), checkpoint=ckpt),
        distill=dict(
            hint=dict(type='FeatureImitation',
                      student='decode_head.bottleneck',
                      teacher='decode_head.bottleneck'),
            holistic=dict(type='HolisticAdversarialKD',
                          student='decode_head.conv_seg',
                          teacher='decode_head.conv_seg',
                          discriminator=dict(type='ScoreMapDiscriminator',
                                             widths=(4, 8)))),
        probe_size=(32, 32))


def _cfg(**student_extra):
    return dict(
        constructor=CONSTRUCTOR,
        student=dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
                     **student_extra),
        discriminator=dict(optimizer=dict(type='SGD', lr=4e-4)))


def _ids(wrapper):
    return {id(p) for group in wrapper.optimizer.param_groups
            for p in group['params']}


def test_student_and_adaptors_vs_discriminator(distiller):
    wrappers = build_optim_wrapper(distiller, _cfg())
    assert isinstance(wrappers, OptimWrapperDict)
    assert set(wrappers.keys()) == {'student', 'discriminator'}
    disc = {id(p) for p in
            distiller.distill_terms.holistic.discriminator.parameters()}
    student = {id(p) for p in distiller.student.parameters()}
    adaptor = {id(p) for p in
               distiller.distill_terms.hint.adaptors.parameters()}
    assert adaptor and disc
    assert _ids(wrappers['student']) == student | adaptor
    assert _ids(wrappers['discriminator']) == disc
    assert wrappers['discriminator'].optimizer.param_groups[0]['lr'] == 4e-4
    assert all(not p.requires_grad or id(p) in student | adaptor | disc
               for p in distiller.parameters())
    teacher = {id(p) for p in distiller.teacher.parameters()}
    assert not teacher & (_ids(wrappers['student']) |
                          _ids(wrappers['discriminator']))


def test_student_paramwise_cfg_sees_the_distiller_names(distiller):
    cfg = _cfg(paramwise_cfg=dict(
        custom_keys={'distill_terms.hint': dict(lr_mult=10.0)}))
    wrappers = build_optim_wrapper(distiller, cfg)
    adaptor = {id(p) for p in
               distiller.distill_terms.hint.adaptors.parameters()}
    lrs = {}
    for group in wrappers['student'].optimizer.param_groups:
        for p in group['params']:
            lrs[id(p)] = group['lr']
    assert sorted(lrs[i] for i in adaptor) == \
        pytest.approx([0.1] * len(adaptor))
    others = [lr for i, lr in lrs.items() if i not in adaptor]
    assert others and others == pytest.approx([0.01] * len(others))


def test_clear_errors(distiller, tmp_path):
    cfg = _cfg()
    del cfg['discriminator']
    with pytest.raises(ValueError, match=r"missing \['discriminator'\]"):
        build_optim_wrapper(distiller, cfg)
    with pytest.raises(ValueError, match='no top-level paramwise_cfg'):
        AdversarialOptimWrapperConstructor(
            dict(student={}, discriminator={}), dict(norm_decay_mult=0))
    plain = distiller.student
    with pytest.raises(ValueError, match='found no adversarial term'):
        build_optim_wrapper(plain, _cfg())


def test_adversarial_constructor_is_recognised_with_or_without_scope():
    for name in ('mmkd.AdversarialOptimWrapperConstructor',
                 'AdversarialOptimWrapperConstructor'):
        assert uses_adversarial_constructor(dict(constructor=name))
    assert not uses_adversarial_constructor(
        dict(optimizer=dict(type='SGD', lr=0.1)))
    assert not uses_adversarial_constructor(
        dict(constructor='DefaultOptimWrapperConstructor'))
    assert not uses_adversarial_constructor(None)


def test_enable_amp_on_every_form_of_optim_wrapper():
    adversarial = _cfg()
    assert enable_amp(adversarial)
    for key in ('student', 'discriminator'):
        assert adversarial[key]['type'] == 'AmpOptimWrapper'
        assert adversarial[key]['loss_scale'] == 'dynamic'
    assert 'type' not in adversarial  # the constructor entry stays
    assert not enable_amp(adversarial)  # already on
    single = dict(optimizer=dict(type='SGD', lr=0.01))
    assert enable_amp(single) and single['type'] == 'AmpOptimWrapper'
    named = dict(generator=dict(type='OptimWrapper', optimizer={}),
                 discriminator=dict(type='OptimWrapper', optimizer={}))
    assert enable_amp(named)
    assert {v['type'] for v in named.values()} == {'AmpOptimWrapper'}
