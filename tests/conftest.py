"""Shared fixtures: tiny mmdet/mmseg models and saved teacher checkpoints."""
import copy
import logging
import os.path as osp
import sys

import pytest
import torch
from mmengine.registry import DefaultScope, init_default_scope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'tools', 'demo'))


def tiny_retinanet(base: int = 8, width: int = 16) -> dict:
    """A RetinaNet small enough to run in milliseconds on a CPU."""
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(
            type='DetDataPreprocessor', mean=[0., 0., 0.], std=[1., 1., 1.],
            bgr_to_rgb=False, pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, base_channels=base,
                      out_indices=(1, 2, 3), norm_eval=False,
                      init_cfg=None),
        neck=dict(type='FPN', in_channels=[2 * base, 4 * base, 8 * base],
                  out_channels=width, num_outs=3),
        bbox_head=dict(
            type='RetinaHead', num_classes=3, in_channels=width,
            stacked_convs=1, feat_channels=width,
            anchor_generator=dict(
                type='AnchorGenerator', octave_base_scale=4,
                scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                          alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1,
            pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=20))


def tiny_pspnet(base: int = 8, channels: int = 16) -> dict:
    """A PSPNet (ResNetV1c-18, dilated, stride 8) for CPU tests."""
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0., 0., 0.],
                               std=[1., 1., 1.], size_divisor=8),
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=base,
                      base_channels=base, out_indices=(0, 1, 2, 3),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                      norm_cfg=dict(type='BN', requires_grad=True)),
        decode_head=dict(
            type='PSPHead', in_channels=8 * base, in_index=3,
            channels=channels, pool_scales=(1, 2, 3, 6), num_classes=4,
            norm_cfg=dict(type='BN', requires_grad=True),
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


@pytest.fixture
def det_scope():
    init_default_scope('mmdet')
    yield 'mmdet'


@pytest.fixture
def seg_scope():
    init_default_scope('mmseg')
    yield 'mmseg'


def save_teacher(model_cfg: dict, path: str, scope: str) -> str:
    """Build ``model_cfg`` (random weights, fixed seed) and save it."""
    from mmengine.registry import MODELS
    from mmkd.distillers.probe import holds_uninitialised_memory
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(copy.deepcopy(model_cfg))
    with torch.no_grad():  # uninitialised memory (a DETR's level_embed)
        for param in model.parameters():
            if holds_uninitialised_memory(param):
                param.zero_()
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def init_as_the_runner_does(model: torch.nn.Module) -> None:
    """``model.init_weights()`` as the Runner calls it, offline
    (:func:`mmkd.utils.init.init_weights_offline`)."""
    from mmkd.utils.init import init_weights_offline
    init_weights_offline(model)


@pytest.fixture
def det_teacher_ckpt(tmp_path, det_scope):
    return save_teacher(tiny_retinanet(16, 32), str(tmp_path / 't.pth'),
                        'mmdet')


@pytest.fixture
def seg_teacher_ckpt(tmp_path, seg_scope):
    return save_teacher(tiny_pspnet(16, 32), str(tmp_path / 't.pth'),
                        'mmseg')


@pytest.fixture
def no_leftover_scope():
    """Drop the default scopes and message hubs a test creates (building
    a config's model sets its default scope; a distiller reads the current
    message hub), so that none outlives the test."""
    from mmengine.logging import MessageHub
    before = {cls: set(cls._instance_dict)
              for cls in (DefaultScope, MessageHub)}
    yield
    for cls, names in before.items():
        for name in set(cls._instance_dict) - names:
            del cls._instance_dict[name]


@pytest.fixture
def runner_state_restored():
    """Drop the loggers, message hubs, default scopes and visualizers an
    MMEngine Runner registers globally (closing the log files it opened)
    and restore the RNG, so no state outlives the test."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.visualization import Visualizer
    managers = (MMLogger, MessageHub, DefaultScope, Visualizer)
    before = {cls: set(cls._instance_dict) for cls in managers}
    with torch.random.fork_rng(devices=[]):
        yield
    for cls in managers:
        for name in set(cls._instance_dict) - before[cls]:
            instance = cls._instance_dict.pop(name)
            for handler in getattr(instance, 'handlers', [])[:]:
                if isinstance(handler, logging.FileHandler):
                    handler.close()
                    instance.removeHandler(handler)
