"""The configs with several named teachers or a teacher fed its own inputs
(multi-teacher ensembles, MTPD's progressive teachers, a teacher at twice
the student's resolution) build with their real teacher configs (one
random local checkpoint per teacher) and train two iterations on a tiny
random batch."""
import glob
import os.path as osp
from typing import List, Tuple

import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.logging import MessageHub
from test_configs import _build, teacher_slots

from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher import resolve_config_path

FOLDERS = ('multi_teacher', 'mtpd', 'hr_teacher')
CONFIGS = sorted(p for folder in FOLDERS for p in glob.glob(
    osp.join(REPO, 'configs', 'det', folder, '*.py')))


def _config_id(path: str) -> str:
    """``folder/file.py``, so that ``-k mtpd`` selects a folder."""
    return '/'.join(path.split(osp.sep)[-2:])


pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def _config(folder: str, prefix: str = '') -> Config:
    paths = sorted(glob.glob(
        osp.join(REPO, 'configs', 'det', folder, prefix + '*.py')))
    assert len(paths) == 1, paths
    return Config.fromfile(paths[0])


def test_every_folder_ships_a_config():
    assert {osp.basename(osp.dirname(p)) for p in CONFIGS} == set(FOLDERS)


@pytest.fixture
def message_hub():
    """The distiller reads the iteration and epoch (which its teacher
    schedules follow) from the current message hub: one of its own."""
    name = f'teacher-configs-{id(object())}'
    hub = MessageHub.get_instance(name)
    yield hub
    MessageHub._instance_dict.pop(name, None)


def _steps(model) -> List[Tuple[int, int]]:
    """(iteration, epoch) of the two training steps: one in each of the
    first two stages of a teacher schedule, else two at the start."""
    starts = sorted({(start, choice.by)
                     for choice in (t.teacher_choice
                                    for t in model.distill_terms.values())
                     for start, _ in choice.stages if start})
    if not starts:
        return [(0, 0), (1, 0)]
    start, by = starts[0]
    return [(0, 0), (start, 0) if by == 'iter' else (1, start)]


def _check_multi_teacher(model, inputs, samples):
    ensemble = ('r101', 'x101')
    assert model.teachers_read(0, 0) == dict(
        ld=ensemble, ld_vlr=ensemble, cls_kd=ensemble, neck=('x101', ))
    assert model.slots['r101'].module.backbone.depth == 101
    assert model.slots['x101'].module.backbone.groups == 32


def _check_mtpd(model, inputs, samples):
    assert model.teachers_read(0, 11) == dict(fpn=('r101', ))
    assert model.teachers_read(0, 12) == dict(fpn=('x101', ))
    assert model.slots['x101'].module.backbone.groups == 64


@torch.no_grad()
def _check_hr_teacher(model, inputs, samples):
    assert model.slots['teacher'].inputs.scale == 2.0
    (name, term), = model.distill_terms.items()
    model.run_teachers(inputs, samples)
    teacher = term.parse_record(
        model.teacher_recorder.get(term.teacher_spec, name), 'teacher')
    model.teacher_recorder.clear()
    student = model.student.extract_feat(inputs)
    assert len(teacher) == len(student) == 5
    for s, t in zip(student, teacher):
        assert tuple(t.shape[-2:]) == (2 * s.shape[-2], 2 * s.shape[-1])


CHECKS = dict(multi_teacher=_check_multi_teacher, mtpd=_check_mtpd,
              hr_teacher=_check_hr_teacher)


@pytest.mark.parametrize('path', CONFIGS, ids=_config_id)
def test_builds_and_trains_two_iterations(path, tmp_path, message_hub,
                                          monkeypatch):
    model = _build(path, tmp_path).train()
    ran = []
    run_slot = model._run_slot

    def spy(slot, *args):
        ran.append(slot.name)
        return run_slot(slot, *args)

    monkeypatch.setattr(model, '_run_slot', spy)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    inputs, samples = make_probe_batch(model.student, (128, 128))
    inputs = torch.randn_like(inputs) * 50
    for iteration, epoch in _steps(model):
        message_hub.update_info('iter', iteration)
        message_hub.update_info('epoch', epoch)
        ran.clear()
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        # each teacher some term reads at this step runs, once; no other
        reads = model.teachers_read(iteration, epoch)
        assert sorted(ran) == sorted({n for names in reads.values()
                                      for n in names})
        distill = {k: v for k, v in losses.items() if 'distill' in k}
        assert set(distill) == {f'loss_distill_{n}'
                                for n in model.distill_terms}
        assert all(torch.isfinite(v) for v in distill.values())
        total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                    for v in losses.values())
        total.backward()
        optimizer.step()
    CHECKS[osp.basename(osp.dirname(path))](model, inputs, samples)


def test_head_terms_cannot_read_the_rescaled_teacher(tmp_path):
    """The priors of a teacher at 2x input do not line up with the
    student's: a dense-head term is a build-time error."""
    (path, ) = glob.glob(osp.join(REPO, 'configs/det/hr_teacher/*.py'))
    cfg_path = tmp_path / 'with_ld.py'
    cfg_path.write_text(
        f"_base_ = '{path}'\n"
        "model = dict(distill=dict(ld=dict(\n"
        "    type='LocalizationDistillation', region='main')))\n")
    with pytest.raises(ValueError, match='prior by prior'):
        _build(str(cfg_path), tmp_path)


def _backbone(slot) -> dict:
    return Config.fromfile(resolve_config_path(slot.config)).model.backbone


def test_multi_teacher_ensemble_and_neck_teacher():
    cfg = _config('multi_teacher')
    slots = teacher_slots(cfg.model)
    assert set(slots) == {'r101', 'x101'} and 'teacher' not in cfg.model
    assert _backbone(slots['r101']).depth == 101
    x101 = _backbone(slots['x101'])
    assert (x101.type, x101.depth, x101.groups) == ('ResNeXt', 101, 32)
    distill = cfg.model.distill
    for name in ('ld', 'ld_vlr', 'cls_kd'):  # LD's terms, as in ../ld/
        assert tuple(distill[name].teacher_model) == ('r101', 'x101')
    ld = Config.fromfile(osp.join(
        REPO, 'configs/det/ld/ld_head_gfl_r101_gfl_r50_fpn_1x_coco.py'))
    for name, term in ld.model.distill.items():
        term_here = dict(distill[name])
        term_here.pop('teacher_model')
        assert term_here == term.to_dict(), name
    assert distill.neck.teacher_model == 'x101'


@pytest.mark.parametrize('term', ['pkd', 'mgd'])
def test_mtpd_switches_teachers_at_the_middle_epoch(term):
    cfg = _config('mtpd', term)
    slots = teacher_slots(cfg.model)
    assert _backbone(slots['r101']).depth == 101
    x101 = _backbone(slots['x101'])
    assert (x101.type, x101.depth, x101.groups) == ('ResNeXt', 101, 64)
    (fpn, ) = cfg.model.distill.values()
    schedule = fpn.teacher_model
    assert schedule.by == 'epoch'
    assert [tuple(step) for step in schedule.schedule] == \
        [(0, 'r101'), (cfg.train_cfg.max_epochs // 2, 'x101')]
    assert cfg.train_cfg.max_epochs == 24


def test_hr_teacher_sees_twice_the_resolution():
    cfg = _config('hr_teacher')
    assert cfg.model.teacher.inputs == dict(scale=2.0)
    assert {term.type for term in cfg.model.distill.values()} == \
        {'PearsonFeatureKD'}
    assert cfg.model.student.backbone.depth == 18
