"""The shipped configs parse and build with their real teacher configs.

The teachers' weights cannot be downloaded here, so each teacher is built
from its config with random weights and saved locally; everything else
(module paths, adaptor channel inference, the masks) is the shipped config.
"""
import glob
import os.path as osp

import pytest
from conftest import REPO, save_teacher
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmkd.distillers.teacher import resolve_config_path
from mmkd.slots import TRAINABLE_ROLES

# students/ and teachers/ (and configs/bench/_base_/) folders hold plain
# model configs that distillation configs take as their _base_ or teacher
# (e.g. GFL-R18 or Deformable DETR R101, which mmdet does not ship)
CONFIGS = sorted(
    path for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                               recursive=True)
    if osp.basename(osp.dirname(path)) not in ('students', 'teachers',
                                               '_base_'))


def teacher_slots(model_cfg) -> dict:
    """``{name: slot config}`` of every teacher a distiller config names:
    the single ``teacher=dict(...)`` (as ``'teacher'``) and the named
    ``teachers=dict(name=dict(...), ...)``."""
    slots = {}
    if model_cfg.get('teacher') is not None:
        slots['teacher'] = model_cfg.teacher
    slots.update(model_cfg.get('teachers') or {})
    return slots


def _build(path, tmp_path):
    """The shipped config as it is (default 256x256 probe included), with
    a local random checkpoint for each of its teachers (EMA teachers are
    copies of the student and have none)."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    slots = teacher_slots(cfg.model)
    assert slots, f'{path} names no teacher'
    for name, slot in slots.items():
        if slot.get('role') == 'ema':
            assert slot.get('checkpoint') is None, name
            continue
        if slot.get('role') in TRAINABLE_ROLES:  # they learn from scratch
            continue
        assert slot.checkpoint.startswith('https://'), name
        teacher_cfg = Config.fromfile(resolve_config_path(slot.config))
        slot.checkpoint = save_teacher(
            teacher_cfg.model, str(tmp_path / f'teacher_{name}.pth'),
            cfg.default_scope)
    return MODELS.build(cfg.model)


def test_every_config_has_a_readme_in_its_folder():
    assert CONFIGS
    for path in CONFIGS:
        assert osp.isfile(osp.join(osp.dirname(path), 'README.md')), path


def test_fgfi_retinanet_config(tmp_path):
    path = osp.join(REPO, 'configs/det/fgfi/'
                    'fgfi_neck_retinanet_r101_retinanet_r18_fpn_1x_coco.py')
    model = _build(path, tmp_path)
    term = model.distill_terms.fpn
    assert len(term.adaptors) == 5  # P3-P7
    assert {(a.conv.conv.in_channels, a.conv.conv.out_channels)
            for a in term.adaptors} == {(256, 256)}
    assert term.mask._generator is model.student.bbox_head.prior_generator
    assert model.student.backbone.depth == 18
    assert model.teacher.backbone.depth == 101
    assert (term.normalize, term.loss_weight, term.warmup_iters) == \
        ('fgfi', 0.01, 400)


def test_pspnet_config(tmp_path):
    path = osp.join(REPO, 'configs/seg/pixel_kd/pixelkd_fi_pspnet_r101-d8_'
                    'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    model = _build(path, tmp_path)
    conv = model.distill_terms.bottleneck.adaptors[0].conv.conv
    assert (conv.in_channels, conv.out_channels) == (128, 512)
    assert model.distill_terms.logits.loss_weight == 10.0
    assert model.teacher.backbone.depth == 101


def _first_base(path: str) -> str:
    """The path of the first config a config names in its ``_base_``."""
    # mmengine drops _base_ after merging, so it is read from the file
    with open(path) as f:
        first = next(line for line in f if line.startswith('_base_'))
    base_path = first.split("'")[1]
    if base_path.startswith('.'):
        base_path = osp.join(osp.dirname(path), base_path)
    return resolve_config_path(base_path)


def _plain_model_base(path: str) -> Config:
    """The first plain model config down a config's chain of first bases.

    A recipe or larger-peer config may take another distiller config as its
    first base; the student is then the model that config's chain ends in.
    """
    base = Config.fromfile(_first_base(path))
    while 'student' in base.model:
        path = base.filename
        base = Config.fromfile(_first_base(path))
    return base


@pytest.mark.parametrize('path', CONFIGS)
def test_student_is_the_unchanged_base_model(path):
    cfg = Config.fromfile(path)
    base = _plain_model_base(path)
    if 'student' not in cfg.model:
        # a peer's own distillation model (mmdet's LD detector in
        # configs/bench/): it keeps the student's layers but is no mmkd
        # distiller, so only its backbone and neck are compared
        assert cfg.model.type != 'mmkd.Distiller'
        # MMRazor's algorithms hold the student as their architecture
        model = cfg.model.get('architecture', cfg.model)
        for part in ('backbone', 'neck'):
            assert model[part].to_dict() == base.model[part].to_dict()
        return
    student = cfg.model.student.to_dict()
    # mmengine tags values taken from a package config with their scope
    # (bases without a package config, as configs/bench/, are untagged)
    assert student.pop('_scope_', cfg.default_scope) == cfg.default_scope
    expected = base.model.to_dict()
    expected.pop('_scope_', None)  # tagged too when the base is local
    assert student == expected
