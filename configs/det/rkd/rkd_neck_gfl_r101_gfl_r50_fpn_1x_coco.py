# RKD (Park et al., CVPR 2019): GFL-R101 teacher -> GFL-R50 student, COCO,
# 1x. The set of embeddings is the batch's ground-truth instances: each
# box RoIAlign-pooled (7x7) from the FPN level mmdet's RoI extractor rule
# gives it (finest scale 56, the nearest of P3-P7) and flattened; distance
# (weight 25, distances normalised by their mean) and angle (weight 50)
# Huber losses over all instances of the batch. The student config is
# MMDetection's own.
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        rkd=dict(type='RelationalKD', student='neck', teacher='neck',
                 distance_weight=25.0, angle_weight=50.0)))
