"""The FPN feature-suite configs (FGD, CWD, PKD, MGD, RTMDet KD) build with
their real teacher configs (random local weights) and train two
iterations on a tiny random batch."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from test_configs import _build

from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher import resolve_config_path
from mmkd.losses import (ChannelWiseKD, FocalGlobalKD, MaskedGenerativeKD,
                         PearsonFeatureKD)

FOLDERS = dict(fgd=FocalGlobalKD, cwd=ChannelWiseKD, pkd=PearsonFeatureKD,
               mgd=MaskedGenerativeKD, rtmdet_kd=ChannelWiseKD)
CONFIGS = sorted(p for folder in FOLDERS for p in glob.glob(
    osp.join(REPO, 'configs', 'det', folder, '*.py')))


pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def test_every_folder_ships_a_config():
    shipped = {osp.basename(osp.dirname(p)) for p in CONFIGS}
    assert shipped == set(FOLDERS)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_builds_and_trains_two_iterations(path, tmp_path):
    model = _build(path, tmp_path).train()
    term_type = FOLDERS[osp.basename(osp.dirname(path))]
    assert all(isinstance(t, term_type)
               for t in model.distill_terms.values())
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
        assert all(torch.isfinite(v) and v > 0 for v in distill.values())
        total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                    for v in losses.values())
        total.backward()
        optimizer.step()


def _untagged(value):
    if isinstance(value, dict):
        return {k: _untagged(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_untagged(v) for v in value]
    return value


def test_rtmdet_recipe(tmp_path):
    path = osp.join(REPO, 'configs/det/rtmdet_kd/'
                    'cwd_neck_rtmdet_s_rtmdet_tiny_8xb32-300e_coco.py')
    cfg = Config.fromfile(path)
    base = Config.fromfile(resolve_config_path(
        'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'))
    # the base config's hooks unchanged (but for the scope tags mmengine
    # adds to values taken from a package config), plus the switch
    assert _untagged(cfg.custom_hooks[:-1]) == _untagged(base.custom_hooks)
    assert cfg.custom_hooks[-1] == dict(type='mmkd.DistillSwitchHook',
                                        stop_epoch=280)
    assert base.max_epochs - base.stage2_num_epochs == 280
    model = _build(path, tmp_path)
    for term in model.distill_terms.values():
        conv = term.adaptors[0].conv
        assert (conv.conv.in_channels, conv.conv.out_channels) == (96, 128)
        assert conv.conv.bias is None
        for norm in (conv.norm, term.teacher_norms[0]):
            assert not norm.affine and not norm.track_running_stats
        assert term.loss_weight == 1.0


def test_fgd_weights(tmp_path):
    paths = sorted(glob.glob(osp.join(REPO, 'configs/det/fgd/*.py')))
    weights = {osp.basename(p).split('_')[2]: Config.fromfile(
        p).model.distill.fpn for p in paths}
    retina, faster = weights['retinanet'], weights['faster-rcnn']
    assert (retina.alpha_fg, retina.beta_bg, retina.gamma_attention,
            retina.lambda_global) == (1e-3, 5e-4, 5e-4, 5e-6)
    assert (faster.alpha_fg, faster.beta_bg, faster.gamma_attention,
            faster.lambda_global) == (5e-5, 2.5e-5, 5e-5, 5e-7)
