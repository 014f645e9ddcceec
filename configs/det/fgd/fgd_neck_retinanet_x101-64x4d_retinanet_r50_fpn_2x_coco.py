# FGD (Yang et al., CVPR 2022): focal and global distillation of every FPN
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
            type='FocalGlobalKD', student='neck', teacher='neck',
            temperature=0.5,
            alpha_fg=1e-3,  # α, foreground
            beta_bg=5e-4,  # β, background
            gamma_attention=5e-4,  # γ, attention L1
            lambda_global=5e-6)))  # λ, GcBlock relation
