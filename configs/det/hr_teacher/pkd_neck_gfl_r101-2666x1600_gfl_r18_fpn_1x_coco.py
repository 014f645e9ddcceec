# A teacher at twice the student's resolution: the GFL-R101 (ms 2x) teacher
# sees every batch rescaled by 2 (2666x1600 for the student's 1333x800),
# PKD (Cao et al., NeurIPS 2022) at every FPN level, the student's maps
# resized to the teacher's (2x) H x W -> GFL-R18, COCO, 1x.
# The student config is ../ld/students/gfl_r18_fpn_1x_coco.py, unchanged
# (MMDetection ships no GFL-R18 config).
_base_ = '../ld/students/gfl_r18_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
                 checkpoint=teacher_ckpt,
                 inputs=dict(scale=2.0)),  # the batch and its gt boxes x2
    distill=dict(
        # a feature term only: the teacher's head priors no longer line up
        # with the student's, so dense-head terms (LD, BCKD, ...) cannot
        # read this teacher
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 loss_weight=10.0)))  # PKD's one-stage weight
