# Deep Mutual Learning (Zhang et al., CVPR 2018) with peers of different
# sizes: the GFL-R50 student learns together with a GFL-R101 peer (both
# ImageNet backbones, heads from scratch) on COCO 1x, each with its own
# task loss and with KD from the other through the head views (LD's
# main-region terms, as in dml_head_gfl_r50_gfl_r50_fpn_1x_coco.py). No
# pretrained teacher: the R101 learns beside the student; DML found the
# small model gains most from a larger peer and the large one still gains.
_base_ = './dml_head_gfl_r50_gfl_r50_fpn_1x_coco.py'

# mmdet ships GFL-R101 at ms-2x only; its model is the R50's with a
# ResNet-101 backbone (the schedule and augmentation are the student's,
# since the peer trains on the student's batch)
model = dict(teachers=dict(peer=dict(
    config='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py')))
