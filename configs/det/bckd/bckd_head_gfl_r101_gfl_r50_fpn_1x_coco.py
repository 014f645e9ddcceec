# BCKD (Yang et al., ICCV 2023): binary classification KD and IoU-based
# localization KD on the dense head. GFL-R101 (ms 2x) teacher -> GFL-R50,
# COCO, 1x. The student config is MMDetection's own, unchanged.
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
        # sum_c BCE(s_c, sigmoid(t_c)) * |sigmoid(t_c) - sigmoid(s_c)|^beta
        cls=dict(type='BinaryClassificationKD', beta=1.0, loss_weight=1.0),
        # GIoU of the decoded boxes, weighted by max_c |score gap|
        box=dict(type='IoULocalizationKD', loss_weight=4.0)))
