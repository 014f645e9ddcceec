# The digits DETR-family teacher: the student's DAB-DETR at twice the width
# (ResNet-18 base 32, its stride-16 stage of 128 channels mapped to 64, a
# 64-wide transformer with 4 heads), the same depth and queries.
_base_ = './digits_dab-detr_r18w16.py'

_attn = dict(embed_dims=64)
_ffn = dict(embed_dims=64, feedforward_channels=256)
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[128], out_channels=64),
    encoder=dict(layer_cfg=dict(self_attn_cfg=_attn, ffn_cfg=_ffn)),
    decoder=dict(layer_cfg=dict(self_attn_cfg=_attn, cross_attn_cfg=_attn,
                                ffn_cfg=_ffn)),
    positional_encoding=dict(num_feats=32),
    bbox_head=dict(embed_dims=64))
