# AB (Heo et al., AAAI 2019): activation-boundary distillation on the FPN
# outputs (P3-P7: convs without activation, the pre-activation responses
# the head reads), through 1x1 conv + BN connectors (the authors'),
# margin 1. RetinaNet-R101 teacher -> RetinaNet-R50 student, COCO, 1x.
# The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        # mean over elements of 1[T>0](1 - A(S))_+^2 + 1[T<=0](1 + A(S))_+^2
        # per level, summed; weight 1 is ours (no detection weight is
        # published; the authors' CIFAR code uses sum / N x 3/1000)
        fpn=dict(type='ActivationBoundaryKD', student='neck',
                 teacher='neck', margin=1.0,
                 adaptor=dict(type='ConvAdaptor', norm_cfg=dict(type='BN')),
                 normalize='mean', loss_weight=1.0)))
