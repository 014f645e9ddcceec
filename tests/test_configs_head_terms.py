"""The head-level configs build with their real teacher configs (random
local weights) and train two iterations on a tiny random batch."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from test_configs import _build

from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import DenseHeadTerm

FOLDERS = ('ld', 'chen2017', 'bckd', 'crosskd')
CONFIGS = sorted(p for folder in FOLDERS for p in glob.glob(
    osp.join(REPO, 'configs', 'det', folder, '*.py')))


def test_every_head_folder_ships_configs():
    shipped = {osp.basename(osp.dirname(p)) for p in CONFIGS}
    assert {'ld', 'chen2017'} <= shipped


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_builds_and_trains_two_iterations(path, tmp_path):
    model = _build(path, tmp_path).train()
    head_terms = [t for t in model.distill_terms.values()
                  if isinstance(t, DenseHeadTerm)]
    assert head_terms and all(t.view is not None for t in head_terms)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    inputs, samples = make_probe_batch(model.student, (128, 128))
    inputs = torch.randn_like(inputs) * 50
    for _ in range(2):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        distill = {k: v for k, v in losses.items() if 'distill' in k}
        assert set(distill) == {f'loss_distill_{n}'
                                for n in model.distill_terms}
        assert all(torch.isfinite(v) for v in distill.values())
        total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                    for v in losses.values())
        total.backward()
        optimizer.step()
