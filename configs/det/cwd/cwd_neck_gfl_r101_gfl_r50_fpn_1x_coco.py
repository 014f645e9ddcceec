# CWD (Shu et al., ICCV 2021): channel-wise distillation of every FPN level,
# GFL-R101 (ms 2x) teacher -> GFL-R50 student, COCO, 1x.
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
        # tau^2 / (N C) sum_c KL(softmax_HW(T_c/tau) || softmax_HW(S_c/tau))
        fpn=dict(type='ChannelWiseKD', student='neck', teacher='neck',
                 temperature=1.0, loss_weight=10.0)))
