"""The shipped self-distillation configs (BYOT's auxiliary heads, ONE's
gated branches, NetAug's wide models) build on the real COCO/Cityscapes
models and train two iterations on a tiny random batch: the slot's task
losses and every KD term are there and finite, student and slot weights move, and the
exported student is the plain mmdet/mmseg model."""
import copy
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmkd.distillers.probe import make_probe_batch
from mmkd.registry import MODELS

CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', '*', 'byot', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', '*', 'one', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', '*', 'netaug', '*.py')))

pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def test_det_and_seg_ship_byot_and_one_configs():
    assert {tuple(p.split(osp.sep)[-3:-1]) for p in CONFIGS} == {
        ('det', 'byot'), ('seg', 'byot'), ('det', 'one'), ('seg', 'one'),
        ('det', 'netaug'), ('seg', 'netaug')}


@pytest.mark.parametrize(
    'path', CONFIGS, ids=lambda p: '/'.join(p.split(osp.sep)[-3:]))
def test_builds_and_trains_two_iterations(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    student_cfg = copy.deepcopy(cfg.model.student)  # before it is built
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    (slot_name, ) = model.trainable_slots.keys()
    inputs, samples = make_probe_batch(model.student, (128, 128))
    inputs = torch.randn_like(inputs) * 50
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    for _ in range(2):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        assert any(k.startswith(f'{slot_name}.') for k in losses)
        distill = [v for k, v in losses.items() if 'distill' in k]
        assert len(distill) == len(model.distill_terms)
        assert all(torch.isfinite(v) for v in distill)
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    moved = {k.split('.')[0] for k, v in model.named_parameters()
             if not torch.equal(before[k], v.detach())}
    assert moved >= {'student', 'trainable_slots'}
    # what extract_student keeps is the user's model, loadable strictly
    student = {k[len('student.'):]: v for k, v in after.items()
               if k.startswith('student.')}
    plain = MODELS.build(student_cfg)
    plain.load_state_dict(student, strict=True)
