"""The FSP and RKD configs (COCO, Cityscapes and digits benchmark) build
with their real teacher configs (random local weights) and train two
iterations on a tiny random batch."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO, save_teacher
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from test_configs import _build

from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher import resolve_config_path
from mmkd.losses import FlowOfSolutionKD, RelationalKD

TERMS = dict(fsp=FlowOfSolutionKD, rkd=RelationalKD)
SHIPPED = sorted(
    p for task in ('det', 'seg') for folder in TERMS
    for p in glob.glob(osp.join(REPO, 'configs', task, folder, '*.py')))
BENCH = sorted(
    p for pattern in ('det/fsp_*', 'det/rkd_*', 'seg/fsp_*')
    for p in glob.glob(osp.join(REPO, 'configs', 'bench', pattern + '.py')))


pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def test_every_config_is_found():
    assert {osp.basename(osp.dirname(p)) for p in SHIPPED} == set(TERMS)
    assert len(SHIPPED) == 3 and len(BENCH) == 3


def _bench_model(path, tmp_path):
    """A digits benchmark config with a random local teacher (the
    benchmark trains the real one)."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    teacher_cfg = Config.fromfile(resolve_config_path(
        cfg.model.teacher.config))
    cfg.model.teacher.checkpoint = save_teacher(
        teacher_cfg.model, str(tmp_path / 'teacher.pth'), cfg.default_scope)
    return MODELS.build(cfg.model)


def _more_truth(model, samples):
    """Four instances (det) or several classes (seg) a batch, so that
    distances and angles exist."""
    from mmengine.structures import InstanceData
    for i, sample in enumerate(samples):
        if 'gt_instances' in sample:
            boxes = torch.tensor([[8., 8., 60., 50.], [70., 20., 120., 90.],
                                  [10., 70., 40., 120.]])[:2 + i]
            sample.gt_instances = InstanceData(
                bboxes=boxes, labels=torch.zeros(len(boxes),
                                                 dtype=torch.long))
        else:
            data = sample.gt_sem_seg.data
            classes = torch.arange(data.shape[-1]) * 3 // data.shape[-1]
            sample.gt_sem_seg.data = (classes + i).expand_as(data).clone()


@pytest.mark.parametrize('path', SHIPPED + BENCH, ids=osp.basename)
def test_builds_and_trains_two_iterations(path, tmp_path):
    bench = path in BENCH
    model = (_bench_model(path, tmp_path) if bench else
             _build(path, tmp_path)).train()
    prefix = osp.basename(path).split('_')[0]
    assert all(isinstance(t, TERMS[prefix])
               for t in model.distill_terms.values())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    inputs, samples = make_probe_batch(model.student, (128, 128))
    inputs = torch.randn_like(inputs) * 50
    _more_truth(model, samples)
    for _ in range(2):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        distill = {k: v for k, v in losses.items() if 'distill' in k}
        assert set(distill) == {f'loss_distill_{n}'
                                for n in model.distill_terms}
        assert all(torch.isfinite(v) and v > 0 for v in distill.values())
        total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                    for v in losses.values())
        total.backward()
        optimizer.step()
