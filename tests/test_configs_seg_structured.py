"""The SKD, CWD and DIST segmentation configs build with their real teacher
configs (random local weights) and train two iterations through the
distiller's ``train_step`` with the optimizer wrappers their configs
declare (two for the holistic adversarial term)."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.structures import PixelData
from test_configs import _build

FOLDERS = ('skd', 'cwd', 'dist')
CONFIGS = sorted(p for folder in FOLDERS for p in glob.glob(
    osp.join(REPO, 'configs', 'seg', folder, '*.py')))
SIZE = (128, 256)
SKD = 'pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'


@pytest.fixture
def message_hub():
    """The step reads the iteration from a hub of its own, dropped after."""
    name = f'seg-configs-{id(object())}'
    hub = MessageHub.get_instance(name)
    yield hub
    MessageHub._instance_dict.pop(name, None)


def _cityscapes_batch(size=SIZE, classes=19):
    """Two images with Cityscapes-style labels (19 classes, 255 ignored)."""
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(0)
    data = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=size,
                                             ori_shape=size, pad_shape=size))
        labels = torch.randint(0, classes, (1, *size), generator=generator)
        labels[:, :8] = 255
        sample.gt_sem_seg = PixelData(data=labels)
        image = torch.randint(0, 256, (3, *size), generator=generator,
                              dtype=torch.uint8)
        data.append(dict(inputs=image, data_samples=sample))
    return pseudo_collate(data)


def test_every_folder_ships_configs():
    assert {osp.basename(osp.dirname(p)) for p in CONFIGS} == set(FOLDERS)
    assert len(glob.glob(osp.join(REPO, 'configs/seg/skd/*.py'))) == 3


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_builds_and_trains_two_iterations(path, tmp_path, message_hub):
    cfg = Config.fromfile(path)
    model = _build(path, tmp_path).train()
    # the configs pad to 512x1024 (1024x1024 SegFormer) crops: the test
    # batch is smaller
    model.data_preprocessor.size = SIZE
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    adversarial = model.adversarial_terms()
    assert isinstance(wrapper, OptimWrapperDict) == bool(adversarial)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for iteration in range(2):
        message_hub.update_info('iter', iteration)
        log_vars = model.train_step(_cityscapes_batch(), wrapper)
        for name in model.distill_terms:
            value = log_vars[f'loss_distill_{name}']
            assert torch.isfinite(value), name
        assert all(torch.isfinite(v) for v in log_vars.values())
    changed = {k for k, v in model.state_dict().items()
               if not torch.equal(before[k], v)}
    assert 'student.decode_head.conv_seg.weight' in changed
    if adversarial:
        assert any('.discriminator.' in k for k in changed)


def test_skd_ablation_terms_and_optimizers(tmp_path):
    terms = {}
    for step in ('pixel', 'pixel-pair', 'pixel-pair-holistic'):
        path = osp.join(REPO, 'configs/seg/skd', f'skd_{step}_{SKD}')
        terms[step] = Config.fromfile(path)
    assert set(terms['pixel'].model.distill) == {'pixel'}
    assert set(terms['pixel-pair'].model.distill) == {'pixel', 'pair'}
    full = terms['pixel-pair-holistic']
    assert set(full.model.distill) == {'pixel', 'pair', 'holistic'}
    assert full.model.distill.pixel.loss_weight == 10.0
    assert full.model.distill.holistic.loss_weight == 0.1
    assert full.model.distill.holistic.gp_weight == 10.0
    # the student's optimizer and schedule are the base config's, unchanged
    base = Config.fromfile(terms['pixel'].filename)
    assert full.optim_wrapper.student == base.optim_wrapper
    assert full.param_scheduler.student == base.param_scheduler
    disc = full.optim_wrapper.discriminator.optimizer
    assert (disc.type, disc.lr) == ('SGD', 4e-4)
    assert full.param_scheduler.discriminator[0].power == 0.9
    # used only on several GPUs; see test_adversarial_ddp.py
    assert full.model_wrapper_cfg.type == 'mmkd.AdversarialDistillerDDP'
