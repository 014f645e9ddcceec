"""The shipped DETR-family distillation configs build from their files
(with a random local teacher) and train two iterations."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO, init_as_the_runner_does
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope, init_default_scope

from mmkd.distillers.teacher import resolve_config_path

from mmkd.distillers.probe import make_probe_batch


def _build(path: str, tmp_path) -> torch.nn.Module:
    """The shipped config with a local random teacher checkpoint, the
    teacher initialised as a trained one would have been (a DETR's
    level_embed is uninitialised memory until init_weights)."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    # a released checkpoint, or (no R101 Deformable DETR is released) the
    # teacher the config's README says to train first
    checkpoint = cfg.model.teacher.checkpoint
    assert checkpoint.startswith('https://') or checkpoint.startswith(
        'work_dirs/'), checkpoint
    teacher_cfg = Config.fromfile(
        resolve_config_path(cfg.model.teacher.config))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        teacher = MODELS.build(teacher_cfg.model)
    init_as_the_runner_does(teacher)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict(), meta={}), ckpt)
    cfg.model.teacher.checkpoint = ckpt
    return MODELS.build(cfg.model)

CONFIGS = sorted(
    path for folder in ('detrdistill', 'kd_detr')
    for path in glob.glob(osp.join(REPO, 'configs', 'det', folder, '*.py')))

pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def test_detrdistill_and_kd_detr_ship_configs():
    assert {osp.basename(osp.dirname(p)) for p in CONFIGS} == {
        'detrdistill', 'kd_detr'}


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_builds_and_trains_two_iterations(path, tmp_path):
    torch.manual_seed(0)
    model = _build(path, tmp_path)
    init_as_the_runner_does(model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    for _ in range(2):
        inputs, samples = make_probe_batch(model.student, (128, 128))
        losses = model.loss(torch.randn_like(inputs), samples)
        distill = [v for k, v in losses.items() if k.startswith(
            'loss_distill_')]
        assert distill and all(torch.isfinite(v) for v in distill)
        total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                    for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert all(p.grad is None for p in model.teacher.parameters())
