# Decoupled KD (Zhao et al., CVPR 2022) adapted to GFL's per-class sigmoid
# (QFL) classifier, with BCKD's IoU-based localization KD, so that the
# config differs from configs/det/bckd/ in the classification term only.
# GFL-R101 (ms 2x) teacher -> GFL-R50, COCO, 1x. The student config is
# MMDetection's own, unchanged.
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
        # alpha * TCKD (binary KL of the student's assigned class) +
        # beta * NCKD (binary KL of every other class), all valid priors,
        # over the head's positives; add standardize_logits=True and
        # temperature=2.0 for logit standardisation (Sun et al., 2024)
        cls=dict(type='DecoupledHeadKD', alpha=1.0, beta=8.0,
                 temperature=1.0, region='valid', loss_weight=1.0),
        # GIoU of the decoded boxes, weighted by max_c |score gap| (BCKD)
        box=dict(type='IoULocalizationKD', loss_weight=4.0)))
