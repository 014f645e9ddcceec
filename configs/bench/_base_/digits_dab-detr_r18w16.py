# A digits DETR-family student: DAB-DETR on a ResNet-18 at base width 16
# (its stride-16 stage, 64 channels, mapped to 32), a 32-wide transformer
# of 2 encoder and 3 decoder layers with 4 heads, 20 anchor queries,
# 10 digit classes. For the DETR-family feasibility runs
# (tools/benchmark/detr_feasibility.py).
default_scope = 'mmdet'

model = dict(
    type='DABDETR',
    num_queries=20,
    with_random_refpoints=False,
    num_patterns=0,
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(
        type='ResNet', depth=18, base_channels=16, num_stages=3,
        strides=(1, 2, 2), dilations=(1, 1, 1),
        out_indices=(2, ), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
        style='pytorch', init_cfg=None),
    neck=dict(type='ChannelMapper', in_channels=[64], kernel_size=1,
              out_channels=32, act_cfg=None, norm_cfg=None, num_outs=1),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=32, num_heads=4, dropout=0.,
                               batch_first=True),
            ffn_cfg=dict(embed_dims=32, feedforward_channels=128, num_fcs=2,
                         ffn_drop=0., act_cfg=dict(type='PReLU')))),
    decoder=dict(
        num_layers=3,
        query_dim=4,
        query_scale_type='cond_elewise',
        with_modulated_hw_attn=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=32, num_heads=4, attn_drop=0.,
                               proj_drop=0., cross_attn=False),
            cross_attn_cfg=dict(embed_dims=32, num_heads=4, attn_drop=0.,
                                proj_drop=0., cross_attn=True),
            ffn_cfg=dict(embed_dims=32, feedforward_channels=128, num_fcs=2,
                         ffn_drop=0., act_cfg=dict(type='PReLU'))),
        return_intermediate=True),
    positional_encoding=dict(num_feats=16, temperature=20, normalize=True),
    bbox_head=dict(
        type='DABDETRHead', num_classes=10, embed_dims=32,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2., eps=1e-8),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
    test_cfg=dict(max_per_img=20))
