# GFL with a ResNet-18 backbone, COCO 1x: the student of LD's R18 row.
# MMDetection ships no GFL-R18 config: this is its GFL-R50 1x config with
# the backbone and FPN inputs of its own LD-R18 student
# (mmdet::ld/ld_r18-gflv1-r101_fpn_1x_coco.py), as a user would write it.
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=18,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[64, 128, 256, 512]))
