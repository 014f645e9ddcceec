# Chen et al. (NeurIPS 2017), "Learning efficient object detection models
# with knowledge distillation", on RetinaNet: hint learning on the FPN,
# background-weighted soft targets and teacher-bounded box regression.
# RetinaNet-R101 teacher -> RetinaNet-R50 student, COCO, 1x.
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
        # L_hint = ||V - A(Z)||^2 through a 1x1 adaptor, gamma = 0.5
        hint=dict(type='FeatureImitation', student='neck', teacher='neck',
                  loss_weight=0.5),
        # (1 - mu) / mu * L_soft with w0 = 1.5 on every class's negative
        # side (RetinaNet classifies with sigmoids), mu = 0.5
        soft=dict(type='BackgroundWeightedSoftTargets', mu=0.5,
                  background_weight=1.5),
        # nu * L_b on the positives' box deltas, m = 0.2, nu = 0.5
        box=dict(type='TeacherBoundedRegression', margin=0.2,
                 loss_weight=0.5)))
