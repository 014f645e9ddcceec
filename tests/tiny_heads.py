"""Tiny one-stage detectors of every supported dense-head family."""
import copy

import torch
from conftest import tiny_retinanet
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

WIDTH = 16
NUM_CLASSES = 3
H, W = 64, 96  # not square, so rows and columns cannot be swapped
TEST_CFG = dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=20)


def _with_head(detector: str, head: dict, train_cfg, width: int = WIDTH,
               base: int = 8, **extra) -> dict:
    model = tiny_retinanet(base, width)
    model.update(type=detector, bbox_head=head, train_cfg=train_cfg,
                 test_cfg=copy.deepcopy(TEST_CFG), **extra)
    return model


def _anchors(octave_base_scale: int = 4) -> dict:
    return dict(type='AnchorGenerator', ratios=[1.0],
                octave_base_scale=octave_base_scale, scales_per_octave=1,
                strides=[8, 16, 32])


def tiny_gfl(width: int = WIDTH, base: int = 8, reg_max: int = 8) -> dict:
    head = dict(
        type='GFLHead', num_classes=NUM_CLASSES, in_channels=width,
        stacked_convs=1, feat_channels=width, reg_max=reg_max,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
        anchor_generator=_anchors(8),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0,
                      loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0))
    train_cfg = dict(assigner=dict(type='ATSSAssigner', topk=9),
                     allowed_border=-1, pos_weight=-1, debug=False)
    return _with_head('GFL', head, train_cfg, width, base)


def tiny_atss(width: int = WIDTH, base: int = 8) -> dict:
    head = dict(
        type='ATSSHead', num_classes=NUM_CLASSES, in_channels=width,
        stacked_convs=1, feat_channels=width,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
        anchor_generator=_anchors(8),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True,
                             loss_weight=1.0))
    train_cfg = dict(assigner=dict(type='ATSSAssigner', topk=9),
                     allowed_border=-1, pos_weight=-1, debug=False)
    return _with_head('ATSS', head, train_cfg, width, base)


def tiny_fcos(width: int = WIDTH, base: int = 8,
              norm_on_bbox: bool = True) -> dict:
    head = dict(
        type='FCOSHead', num_classes=NUM_CLASSES, in_channels=width,
        stacked_convs=1, feat_channels=width, strides=[8, 16, 32],
        regress_ranges=((-1, 64), (64, 128), (128, 1e8)), norm_cfg=None,
        norm_on_bbox=norm_on_bbox, centerness_on_reg=norm_on_bbox,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True,
                             loss_weight=1.0))
    return _with_head('FCOS', head, None, width, base)


def tiny_rpn(width: int = WIDTH, base: int = 8) -> dict:
    model = tiny_retinanet(base, width)
    model.pop('bbox_head')
    model.update(
        type='RPN',
        rpn_head=dict(
            type='RPNHead', in_channels=width, feat_channels=width,
            anchor_generator=dict(type='AnchorGenerator', scales=[4],
                                  ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(rpn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.3, min_pos_iou=0.3,
                          ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5,
                         neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1, pos_weight=-1, debug=False)),
        test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=20,
                               nms=dict(type='nms', iou_threshold=0.7),
                               min_bbox_size=0)))
    return model


def tiny_retina(width: int = WIDTH, base: int = 8) -> dict:
    return tiny_retinanet(base, width)


FAMILIES = dict(retina=tiny_retina, atss=tiny_atss, gfl=tiny_gfl,
                fcos=tiny_fcos, rpn=tiny_rpn)


def det_batch(h=H, w=W):
    """Random images; two gt boxes in the first, one in the second."""
    meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
    boxes = [[[4., 6, 44, 50], [40, 10, 90, 40]], [[20., 8, 52, 60]]]
    labels = [[0, 2], [1]]
    samples = []
    for b, l in zip(boxes, labels):
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(bboxes=torch.tensor(b),
                                           labels=torch.tensor(l))
        samples.append(sample)
    return torch.randn(2, 3, h, w), samples


def tiny_faster_rcnn(width: int = WIDTH, base: int = 8) -> dict:
    """MMDetection's Faster R-CNN with the tiny backbone, FPN and RPN (a
    ConfigDict: two-stage detectors read their configs by attribute)."""
    from mmengine.config import Config, ConfigDict

    from mmkd.distillers.teacher import resolve_config_path
    cfg = Config.fromfile(resolve_config_path(
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')).model
    cfg = cfg.to_dict()
    rpn = tiny_rpn(width, base)
    cfg.update(backbone=rpn['backbone'], neck=rpn['neck'],
               data_preprocessor=rpn['data_preprocessor'])
    cfg['rpn_head'].update(in_channels=width, feat_channels=width,
                           anchor_generator=rpn['rpn_head'][
                               'anchor_generator'])
    roi = cfg['roi_head']
    roi['bbox_roi_extractor'].update(out_channels=width,
                                     featmap_strides=[8, 16, 32])
    roi['bbox_head'].update(in_channels=width, fc_out_channels=32,
                            num_classes=NUM_CLASSES)
    return ConfigDict(cfg)
