"""The DKD and logit-standardisation configs: the COCO config of
configs/det/dkd/ builds with its real teacher config (random local
weights) and trains two iterations, as the head-term sweep does for its
folders; the digits benchmark rows build as the harness builds them and
train two iterations too."""
import glob
import os.path as osp
import sys

import pytest
import torch
import test_configs_head_terms as head_sweep
from conftest import REPO, save_teacher
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS, DefaultScope

from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import (BinaryClassificationKD, DecoupledHeadKD,
                         HeadClassificationKD)

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))

import accuracy  # noqa: E402

COCO = sorted(glob.glob(osp.join(REPO, 'configs', 'det', 'dkd', '*.py')))
BENCH = {
    'dkd': ('det/dkd_head_digits_gfl_r18w32_r18w16.py', DecoupledHeadKD),
    'bckd_ls': ('det/bckd-ls_head_digits_gfl_r18w32_r18w16.py',
                BinaryClassificationKD),
    'ld_ls': ('det/ld-ls_head_digits_gfl_r18w32_r18w16.py',
              HeadClassificationKD),
}


def test_the_dkd_folder_ships_a_config_and_a_readme():
    assert COCO
    assert osp.isfile(osp.join(REPO, 'configs/det/dkd/README.md'))


@pytest.mark.parametrize('path', COCO, ids=osp.basename)
def test_coco_config_builds_and_trains_two_iterations(path, tmp_path):
    head_sweep.test_builds_and_trains_two_iterations(path, tmp_path)


def _two_iterations(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    inputs, samples = make_probe_batch(model.student, (128, 128))
    inputs = torch.randn_like(inputs) * 50
    values = []
    for _ in range(2):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        distill = {k: v for k, v in losses.items() if 'distill' in k}
        assert all(torch.isfinite(v) for v in distill.values())
        values.append(distill)
        sum(v if isinstance(v, torch.Tensor) else sum(v)
            for v in losses.values()).backward()
        optimizer.step()
    return values


@pytest.mark.parametrize('row', sorted(BENCH))
def test_bench_rows_build_and_train_two_iterations(row, tmp_path):
    config, term_type = BENCH[row]
    path = osp.join(accuracy.BENCH, config)
    suite = accuracy.SUITES['det']
    scope = Config.fromfile(suite['teacher']).default_scope
    ckpt = save_teacher(Config.fromfile(suite['teacher']).model,
                        str(tmp_path / 'teacher.pth'), scope)
    model_cfg = ConfigDict(accuracy.distill_model(path, ckpt))
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg).train()
        terms = [t for t in model.distill_terms.values()
                 if isinstance(t, term_type)]
        assert len(terms) == 1
        if row != 'dkd':
            assert terms[0].standardize_logits
        values = _two_iterations(model)
    assert all(v > 0 for step in values for v in step.values())
