# MTPD (Cao et al., ICML 2023): progressive teachers, RetinaNet-R101 (ms 3x,
# 41.0) for the first half of training, then RetinaNet-X101-64x4d (ms 3x,
# 41.6), PKD (Cao et al., NeurIPS 2022) at every FPN level -> RetinaNet-R50,
# COCO, 2x. The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

r101_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_mstrain_3x_coco/retinanet_r101_fpn_mstrain_3x_coco_20210720_214650-7ee888e0.pth'  # noqa: E501
x101_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_mstrain_3x_coco/retinanet_x101_64x4d_fpn_mstrain_3x_coco_20210719_051838-022c2187.pth'  # noqa: E501
r101_cfg = 'mmdet::retinanet/retinanet_r101_fpn_ms-640-800-3x_coco.py'
x101_cfg = 'mmdet::retinanet/retinanet_x101-64x4d_fpn_ms-640-800-3x_coco.py'
# the middle of the base config's 24 epochs (MTPD: 12 epochs a teacher)
switch_epoch = 12

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(
        r101=dict(config=r101_cfg, checkpoint=r101_ckpt),
        x101=dict(config=x101_cfg, checkpoint=x101_ckpt)),
    distill=dict(
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 loss_weight=10.0,  # 10 for RetinaNet
                 teacher_model=dict(
                     schedule=[(0, 'r101'), (switch_epoch, 'x101')],
                     by='epoch'))))
