# FGD (Yang et al., CVPR 2022) on the FPN of a two-stage detector:
# Faster R-CNN-R101 teacher -> Faster R-CNN-R50 student, COCO, 2x, with the
# authors' Faster R-CNN weights. Feature terms on the neck only.
# The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        fpn=dict(
            type='FocalGlobalKD', student='neck', teacher='neck',
            temperature=0.5,
            alpha_fg=5e-5,  # α
            beta_bg=2.5e-5,  # β
            gamma_attention=5e-5,  # γ
            lambda_global=5e-7)))  # λ
