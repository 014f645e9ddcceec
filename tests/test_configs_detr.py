"""The shipped DETR-family distillation configs build from their files
(with a random local teacher) and train two iterations."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO, init_as_the_runner_does
from test_configs import _build

from mmkd.distillers.probe import make_probe_batch

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'det', 'detrdistill',
                                    '*.py')))

pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def test_detrdistill_ships_a_config():
    assert CONFIGS


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
