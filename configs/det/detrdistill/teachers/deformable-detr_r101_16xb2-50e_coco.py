# Deformable DETR with a ResNet-101 backbone, COCO 50 epochs: the teacher of
# DETRDistill's R50 row (the paper's teacher, 44.8 AP). MMDetection ships no
# R101 Deformable DETR config or weights: this is its R50 config with an
# ImageNet ResNet-101, as a user would write it. Train it first:
#   bash tools/dist_train.sh configs/det/detrdistill/teachers/deformable-detr_r101_16xb2-50e_coco.py 8
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
