# The digits benchmark's detection teacher: the student's GFL at twice the
# width (ResNet-18 base 32, FPN/head 64), as the demo's gfl_model(32, 64).
_base_ = './digits_gfl_r18w16.py'

model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[64, 128, 256], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64))
