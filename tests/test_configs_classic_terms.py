"""The AT, NST and AB configs (COCO under configs/det/, the digits
benchmark rows under configs/bench/) build with their real teacher
configs (random local weights) and train two iterations on a tiny random
batch."""
import os.path as osp

import pytest
import torch
from conftest import REPO, save_teacher
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from test_configs import _build

from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import (ActivationBoundaryKD, AttentionTransfer,
                         NeuronSelectivityTransfer)

COCO = {
    'det/at/at_backbone_retinanet_r101_retinanet_r50_fpn_1x_coco.py':
    AttentionTransfer,
    'det/nst/nst_c5_retinanet_r101_retinanet_r50_fpn_1x_coco.py':
    NeuronSelectivityTransfer,
    'det/ab/ab_neck_retinanet_r101_retinanet_r50_fpn_1x_coco.py':
    ActivationBoundaryKD,
}
COCO_NAMES = (
    'at/at_backbone_retinanet_r101_retinanet_r50_fpn_1x_coco.py',
    'nst/nst_c5_retinanet_r101_retinanet_r50_fpn_1x_coco.py',
    'ab/ab_neck_retinanet_r101_retinanet_r50_fpn_1x_coco.py')
BENCH = {
    'bench/det/at_neck_digits_gfl_r18w32_r18w16.py': AttentionTransfer,
    'bench/det/nst_neck_digits_gfl_r18w32_r18w16.py':
    NeuronSelectivityTransfer,
    'bench/det/ab_neck_digits_gfl_r18w32_r18w16.py': ActivationBoundaryKD,
    'bench/seg/at_backbone_digits_fcn_r18w32_r18w16-d8.py':
    AttentionTransfer,
    'bench/seg/nst_head_digits_fcn_r18w32_r18w16-d8.py':
    NeuronSelectivityTransfer,
}


pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def _train_two_iterations(model, size):
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    inputs, samples = make_probe_batch(model.student, size)
    inputs = torch.randn_like(inputs) * 50
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
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize('name', sorted(COCO), ids=osp.basename)
def test_coco_configs_build_and_train_two_iterations(name, tmp_path):
    model = _build(osp.join(REPO, 'configs', name), tmp_path)
    assert all(isinstance(t, COCO[name])
               for t in model.distill_terms.values())
    _train_two_iterations(model, (128, 128))


def test_coco_config_settings(tmp_path):
    at, nst, ab = (_build(osp.join(REPO, 'configs', 'det', name), tmp_path)
                   for name in COCO_NAMES)
    assert (at.distill_terms.stages.p,
            at.distill_terms.stages.loss_weight) == (2.0, 1000.0)
    assert len(at.teacher.backbone.out_indices) == 4  # C2-C5
    term = nst.distill_terms.c5
    assert (term.kernel, term.degree, term.coef, term.loss_weight) == \
        ('poly', 2, 0.0, 50.0)
    term = ab.distill_terms.fpn
    assert (term.margin, term.normalize, len(term.adaptors)) == \
        (1.0, 'mean', 5)  # P3-P7, 256 -> 256 each


@pytest.mark.parametrize('name', sorted(BENCH), ids=osp.basename)
def test_bench_configs_build_and_train_two_iterations(name, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    init_default_scope(cfg.default_scope)
    teacher = Config.fromfile(cfg.model.teacher.config)
    cfg.model.teacher.checkpoint = save_teacher(
        teacher.model, str(tmp_path / 'teacher.pth'), cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert all(isinstance(t, BENCH[name])
               for t in model.distill_terms.values())
    _train_two_iterations(model, (128, 128))
