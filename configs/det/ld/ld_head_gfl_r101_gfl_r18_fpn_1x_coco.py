# LD (Zheng et al., CVPR 2022): localization distillation of the GFL box
# distributions, main + valuable localization regions, and classification
# KD in the main region. GFL-R101 (ms 2x) teacher -> GFL-R18, COCO, 1x.
# The student config is ./students/gfl_r18_fpn_1x_coco.py, unchanged.
_base_ = './students/gfl_r18_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        # assigner positives, weighted by the student's max class score
        ld=dict(type='LocalizationDistillation', region='main',
                temperature=10, loss_weight=0.25),
        # DIoU band [0.25 t, t), t = mean + std of the ATSS candidates' IoU
        ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                    temperature=10, vlr_low=0.25, loss_weight=0.25),
        cls_kd=dict(type='HeadClassificationKD', region='main',
                    temperature=2, loss_weight=10)))
