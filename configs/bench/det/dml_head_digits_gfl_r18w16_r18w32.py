# Deep Mutual Learning (Zhang et al., CVPR 2018) on the digits benchmark
# with a larger peer: the student (GFL ResNet-18 base 16) learns together
# with a peer of the teacher's architecture (base 32, FPN/head 64
# channels), both from scratch, with the terms of
# dml_head_digits_gfl_r18w16_r18w16.py (LD's main-region terms, one copy
# per direction). No external teacher and no checkpoint; the student's AP
# is the row.
_base_ = './dml_head_digits_gfl_r18w16_r18w16.py'

model = dict(teachers=dict(peer=dict(
    config='{{ fileDirname }}/../_base_/digits_gfl_r18w32.py')))
