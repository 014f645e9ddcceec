# NST (Huang & Wang, 2017): neuron selectivity transfer on the last
# residual stage (C5, 2048 channels a side, as the paper transfers the
# final conv stage), RetinaNet-R101 teacher -> RetinaNet-R50 student,
# COCO, 1x. The student config is MMDetection's own, unchanged.
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
        # per image MMD^2 of the L2-normalised channel vectors, kernel
        # (x.y)^2, lambda = 50 (the authors' code)
        c5=dict(type='NeuronSelectivityTransfer', student='backbone.layer4',
                teacher='backbone.layer4', kernel='poly', degree=2,
                coef=0.0, loss_weight=50.0)))
