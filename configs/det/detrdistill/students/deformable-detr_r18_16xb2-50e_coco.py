# Deformable DETR with a ResNet-18 backbone, COCO 50 epochs: the student of
# DETRDistill's R18 row. MMDetection ships no R18 Deformable DETR config:
# this is its R50 config with an ImageNet ResNet-18 and the channel mapper's
# inputs of its stages 2-4, as a user would write it.
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=18,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[128, 256, 512]))
