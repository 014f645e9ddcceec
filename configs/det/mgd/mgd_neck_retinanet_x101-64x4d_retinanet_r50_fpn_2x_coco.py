# MGD (Yang et al., ECCV 2022): masked generative distillation of every FPN
# level, RetinaNet-X101-64x4d teacher -> RetinaNet-R50 student, COCO, 2x
# (the paper's setting). The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_1x_coco/retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        fpn=dict(
            type='MaskedGenerativeKD', student='neck', teacher='neck',
            mask_ratio=0.65,  # λ: share of the student's locations masked
            loss_weight=2e-5)))  # α
