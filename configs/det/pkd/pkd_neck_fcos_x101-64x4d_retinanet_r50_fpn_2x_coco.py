# PKD (Cao et al., NeurIPS 2022) across architectures: an FCOS-X101-64x4d
# teacher -> RetinaNet-R50 student, COCO, 2x. Per-channel standardisation
# makes the two detectors' FPN features comparable (both 5 levels of 256
# channels, strides 8-128); the teacher's own input normalisation is
# applied to the batch for it. The student config is MMDetection's own.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco/fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco-ede514a8.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmdet::fcos/'
        'fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py',
        checkpoint=teacher_ckpt),
    distill=dict(
        # MSE(norm(S), norm(T)) / 2, norm: each channel over (N, H, W)
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 loss_weight=10.0)))
