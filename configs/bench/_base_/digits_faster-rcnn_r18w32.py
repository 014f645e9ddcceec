# The digits benchmark's two-stage teacher: the Faster R-CNN student at
# twice the width (ResNet-18 base 32, FPN/RPN/RoI features 64, 256-d fcs),
# the backbone and neck widths of the GFL teacher.
_base_ = './digits_faster-rcnn_r18w16.py'

model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256)))
