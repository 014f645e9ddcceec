# The digits benchmark's segmentation teacher: the student's FCN at twice
# the width (ResNetV1c-18 stages 1-3, base 32, head 64 channels).
_base_ = './digits_fcn_r18w16-d8.py'

model = dict(
    backbone=dict(stem_channels=32, base_channels=32),
    decode_head=dict(in_channels=128, channels=64))
