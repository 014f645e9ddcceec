# FSP (Yim et al., CVPR 2017): RetinaNet-R101 teacher -> RetinaNet-R50
# student, COCO, 1x. The FSP matrices G = F1^T F2 / (H*W) between
# consecutive backbone stages (out_indices (0, 1, 2, 3): pairs C2-C3,
# C3-C4, C4-C5, the larger map average-pooled to the smaller) are matched,
# mean squared error per pair, pairs summed with equal weights (the
# paper's equal lambda). Both ResNets give 256/512/1024/2048 channels, so
# no adaptor is built. The student config is MMDetection's own.
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
        fsp=dict(type='FlowOfSolutionKD', student='backbone',
                 teacher='backbone', loss_weight=1.0)))
