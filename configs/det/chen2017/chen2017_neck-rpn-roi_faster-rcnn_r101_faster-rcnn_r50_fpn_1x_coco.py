# Chen et al. (NeurIPS 2017), "Learning efficient object detection models
# with knowledge distillation", the paper's full Faster R-CNN recipe:
# hint learning on the FPN, and on both stages background-weighted soft
# targets and teacher-bounded box regression. The R-CNN terms let the
# teacher's R-CNN head score the student's sampled RoIs (same boxes, the
# teacher's own FPN features, no_grad).
# Faster R-CNN-R101 teacher -> Faster R-CNN-R50 student, COCO, 1x.
# The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_1x_coco/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        # L_hint = ||V - A(Z)||^2 on every FPN level through a 1x1 adaptor
        # (the default; the paper adds one even when channels match),
        # gamma = 0.5
        hint=dict(type='FeatureImitation', student='neck', teacher='neck',
                  loss_weight=0.5),
        # RPN: (1 - mu) / mu * L_soft, w0 = 1.5 on the objectness's
        # negative side (RPN classifies with a sigmoid), mu = 0.5
        rpn_soft=dict(type='BackgroundWeightedSoftTargets', head='rpn_head',
                      mu=0.5, background_weight=1.5),
        # RPN: nu * L_b on the positive anchors' deltas, m = 0.2, nu = 0.5
        rpn_box=dict(type='TeacherBoundedRegression', head='rpn_head',
                     margin=0.2, loss_weight=0.5),
        # R-CNN: the same two terms on the student's sampled RoIs, softmax
        # over the 80 classes and the background (w0 = 1.5)
        rcnn_soft=dict(type='RoIBackgroundWeightedSoftTargets', mu=0.5,
                       background_weight=1.5),
        rcnn_box=dict(type='RoITeacherBoundedRegression', margin=0.2,
                      loss_weight=0.5)))
