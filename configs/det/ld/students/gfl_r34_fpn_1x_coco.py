# GFL with a ResNet-34 backbone, COCO 1x: the student of LD's R34 row.
# MMDetection ships no GFL-R34 config: this is its GFL-R50 1x config with
# the backbone and FPN inputs of its own LD-R34 student
# (mmdet::ld/ld_r34-gflv1-r101_fpn_1x_coco.py), as a user would write it.
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=34,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet34')),
    neck=dict(in_channels=[64, 128, 256, 512]))
