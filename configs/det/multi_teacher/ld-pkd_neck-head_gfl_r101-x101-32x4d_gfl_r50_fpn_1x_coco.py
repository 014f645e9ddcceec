# Two GFL teachers at once: LD (Zheng et al., CVPR 2022) and classification
# KD from the mean of both teachers' head predictions, and PKD (Cao et al.,
# NeurIPS 2022) at the neck from the stronger one.
# GFL-R101 (ms 2x, 44.7) + GFL-X101-32x4d (ms 2x, 45.9) teachers -> GFL-R50,
# COCO, 1x. The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

r101_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501
x101_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_x101_32x4d_fpn_mstrain_2x_coco/gfl_x101_32x4d_fpn_mstrain_2x_coco_20200630_102002-50c1ffdb.pth'  # noqa: E501
ensemble = ('r101', 'x101')  # the head terms read both teachers' mean

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(
        r101=dict(config='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
                  checkpoint=r101_ckpt),
        x101=dict(config='mmdet::gfl/gfl_x101-32x4d_fpn_ms-2x_coco.py',
                  checkpoint=x101_ckpt)),
    distill=dict(
        # LD's terms and weights as in configs/det/ld/, each reading the
        # ensemble mean instead of one teacher
        ld=dict(type='LocalizationDistillation', region='main',
                temperature=10, loss_weight=0.25, teacher_model=ensemble),
        ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                    temperature=10, vlr_low=0.25, loss_weight=0.25,
                    teacher_model=ensemble),
        cls_kd=dict(type='HeadClassificationKD', region='main',
                    temperature=2, loss_weight=10, teacher_model=ensemble),
        # both necks give five 256-channel levels: no adaptor needed
        neck=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                  loss_weight=10.0,  # PKD's one-stage weight
                  teacher_model='x101')))
