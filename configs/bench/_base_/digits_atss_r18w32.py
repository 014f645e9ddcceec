# A second digits detection teacher for multi-teacher rows: ATSS (Zhang et
# al., CVPR 2020; focal loss + GIoU + centerness on delta-encoded boxes) of
# the GFL teacher's widths (ResNet-18 base 32, FPN 64, head 64, two stacked
# convs, GN 8 groups). Its priors are the GFL student's: the same FPN levels
# (P3-P5, strides 8/16/32: the digits GFL pair has three levels, not mmdet's
# P3-P7), one square anchor a location of 4x the stride, 10 classes, and the
# same ATSS assigner (topk 9), so neck- and prior-aligned terms can read it.
default_scope = 'mmdet'

model = dict(
    type='ATSS',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, base_channels=32, num_stages=4,
        out_indices=(1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
        style='pytorch', init_cfg=None),
    neck=dict(type='FPN', in_channels=[64, 128, 256], out_channels=64,
              num_outs=3),
    bbox_head=dict(
        type='ATSSHead', num_classes=10, in_channels=64, stacked_convs=2,
        feat_channels=64,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        anchor_generator=dict(
            type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
            scales_per_octave=1, strides=[8, 16, 32]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True,
                             loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9),
                   allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))
