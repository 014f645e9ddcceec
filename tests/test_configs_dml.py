"""The shipped DML configs (peers that learn together) build with their
real peer configs and train two iterations on a tiny random batch: each
model gets its task loss and the KD terms where it is the student."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmkd.distillers.probe import make_probe_batch
from mmkd.registry import MODELS

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', 'dml', '*.py')))


pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def test_det_and_seg_ship_dml_configs():
    assert {p.split(osp.sep)[-3] for p in CONFIGS} == {'det', 'seg'}


@pytest.mark.parametrize(
    'path', CONFIGS, ids=lambda p: '/'.join(p.split(osp.sep)[-3:]))
def test_builds_and_trains_two_iterations(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    peer = model.trainable_slots['peer']
    assert type(peer) is type(model.student)
    # the peer is the config it names, not a copy of the student
    peer_cfg = cfg.model.teachers.peer.config
    if 'r101' in peer_cfg:
        assert peer.backbone.depth == 101
    directions = {name: (term.student_model, term.teacher_choice.stages)
                  for name, term in model.distill_terms.items()}
    assert {s for s, _ in directions.values()} == {'student', 'peer'}
    inputs, samples = make_probe_batch(model.student, (128, 128))
    inputs = torch.randn_like(inputs) * 50
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()
              if k.endswith('weight')}
    for _ in range(2):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        assert any(k.startswith('peer.') for k in losses)
        distill = [v for k, v in losses.items() if 'distill' in k]
        assert len(distill) == len(model.distill_terms)
        assert all(torch.isfinite(v) for v in distill)
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    moved = {k.split('.')[0] for k in before
             if not torch.equal(before[k], after[k])}
    assert moved >= {'student', 'trainable_slots'}
