"""The shipped FT configs (COCO and the digits benchmark row) build with
their real teacher configs (random local weights) and train two
iterations on a tiny random batch, one in each stage."""
import os.path as osp

import pytest
import torch
from conftest import REPO, save_teacher
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from test_configs import _build

from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import FactorTransfer

COCO = osp.join(REPO, 'configs/det/ft/'
                'ft_neck_retinanet_r101_retinanet_r50_fpn_1x_coco.py')
BENCH = osp.join(REPO, 'configs/bench/det/'
                 'ft_neck_digits_gfl_r18w32_r18w16.py')


pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def _two_iterations(model, size):
    """Iteration 0 in stage 1, iteration 1 in stage 2 (the term's
    ``paraphraser_iters`` set to 1); both losses finite and > 0."""
    model.train()
    term = model.distill_terms.fpn
    term.paraphraser_iters = 1
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    inputs, samples = make_probe_batch(model.student, size)
    inputs = torch.randn_like(inputs) * 50
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('ft-config-test')
    for iteration in range(2):
        hub.update_info('iter', iteration)
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        value = losses['loss_distill_fpn']
        assert torch.isfinite(value) and value > 0
        total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                    for v in losses.values())
        total.backward()
        optimizer.step()
    assert bool(term.paraphraser_frozen)


def test_coco_config(tmp_path, runner_state_restored):
    model = _build(COCO, tmp_path)
    term = model.distill_terms.fpn
    assert isinstance(term, FactorTransfer)
    assert (term.paraphraser_iters, term.rate, term.loss_weight,
            term.reconstruction) == (1000, 0.5, 500.0, 'l2')
    assert len(term.paraphrasers) == 5  # P3-P7
    assert term.paraphrasers[0].encoder[2].out_channels == 128
    assert term.translators[0][0].in_channels == 256
    assert model.student.backbone.depth == 50
    assert model.teacher.backbone.depth == 101
    _two_iterations(model, (128, 128))


def test_bench_config(tmp_path, runner_state_restored):
    cfg = Config.fromfile(BENCH)
    teacher_cfg = Config.fromfile(cfg.model.teacher.config)
    cfg.model.teacher.checkpoint = save_teacher(
        teacher_cfg.model, str(tmp_path / 'teacher.pth'), 'mmdet')
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    term = model.distill_terms.fpn
    assert (term.paraphraser_iters, term.loss_weight) == (150, 500.0)
    assert term.paraphrasers[0].encoder[0].in_channels == 64
    assert term.translators[0][0].in_channels == 32
    assert term.translators[0][4].out_channels == 32
    _two_iterations(model, (128, 128))
