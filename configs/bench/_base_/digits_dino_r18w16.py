# A digits DINO student: ResNet-18 at base width 16 (its strides 8/16/32
# stages, 32/64/128 channels, mapped to 256), a 256-wide deformable
# transformer (DINO's decoder encodes box coordinates at a fixed 512
# channels, so its width stays 256) of 2 encoder and 3 decoder layers
# with 3 levels and 4 heads, 30 matching queries and up to 20 denoising
# queries, 10 digit classes. DINO's denoising groups train much faster
# than DAB-DETR's plain matching, which learned too slowly on these CPUs
# (docs/evidence.md); for tools/benchmark/detr_feasibility.py.
default_scope = 'mmdet'

_levels = 3
model = dict(
    type='DINO',
    num_queries=30,
    with_box_refine=True,
    as_two_stage=True,
    num_feature_levels=_levels,
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(
        type='ResNet', depth=18, base_channels=16, num_stages=4,
        out_indices=(1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
        style='pytorch', init_cfg=None),
    neck=dict(type='ChannelMapper', in_channels=[32, 64, 128],
              kernel_size=1, out_channels=256, act_cfg=None,
              norm_cfg=dict(type='GN', num_groups=32), num_outs=_levels),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, num_heads=4,
                               num_levels=_levels, dropout=0.0),
            ffn_cfg=dict(embed_dims=256, feedforward_channels=512,
                         ffn_drop=0.0))),
    decoder=dict(
        num_layers=3,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, num_heads=4, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=256, num_heads=4,
                                num_levels=_levels, dropout=0.0),
            ffn_cfg=dict(embed_dims=256, feedforward_channels=512,
                         ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=128, normalize=True, offset=0.0,
                             temperature=20),
    bbox_head=dict(
        type='DINOHead', num_classes=10, sync_cls_avg_factor=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    dn_cfg=dict(label_noise_scale=0.5, box_noise_scale=1.0,
                group_cfg=dict(dynamic=True, num_groups=None,
                               num_dn_queries=20)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
    test_cfg=dict(max_per_img=30))
