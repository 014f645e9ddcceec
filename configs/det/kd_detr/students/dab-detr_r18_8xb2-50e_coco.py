# DAB-DETR with a ResNet-18 backbone, COCO 50 epochs: the student of
# KD-DETR's R18 row. MMDetection ships no R18 DAB-DETR config: this is its
# R50 config with an ImageNet ResNet-18 and the channel mapper's input of
# its last stage (512 channels), as a user would write it.
_base_ = 'mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=18,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[512]))
