# AT (Zagoruyko & Komodakis, ICLR 2017): attention transfer at the end of
# each of the four residual stages (C2-C5, where the paper places it for
# ResNets), RetinaNet-R101 teacher -> RetinaNet-R50 student, COCO, 1x.
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
        # beta * sum_stages mean_{n,j} (Q_s/|Q_s| - Q_t/|Q_t|)^2,
        # Q = sum_c A_c^2, beta = 1000 (the paper's)
        stages=dict(type='AttentionTransfer', student='backbone',
                    teacher='backbone', p=2.0, loss_weight=1000.0)))
