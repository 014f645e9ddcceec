# CrossKD (Wang et al., CVPR 2024), reimplemented from the paper: the
# student's head features after its 3rd stacked conv go through the rest of
# the frozen teacher head; those predictions mimic the teacher's.
# GFL-R101 (ms 2x) teacher -> GFL-R50, COCO, 1x.
# The student config is MMDetection's own, unchanged.
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
        # classification: BCE to the teacher's scores x |score gap|,
        # weight 1; boxes: edge-distribution KL, T=1, weighted by the
        # teacher's max score, weight 4
        cross=dict(type='CrossHeadKD', reuse_index=3, beta=1.0)))
