# The digits DINO teacher: the student's DINO on a ResNet-18 at base width
# 32 (32/64/128 -> 64/128/256 channels); the same transformer, which
# DINO fixes at 256 wide.
_base_ = './digits_dino_r18w16.py'

model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[64, 128, 256]))
