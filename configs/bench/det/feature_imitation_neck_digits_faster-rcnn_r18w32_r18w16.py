# Ablation of the Chen et al. (2017) recipe on the digits Faster R-CNN pair:
# the hint term alone, MSE between the adapted student FPN levels (1x1
# conv, 32 -> 64 channels) and the teacher's, weight gamma = 0.5 as in the
# chen2017 row. tools/benchmark/accuracy.py fills in the
# teacher checkpoint.
_base_ = '../_base_/digits_faster-rcnn_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_faster-rcnn_r18w32.py',
        checkpoint='work_dirs/bench/det_rcnn_teacher.pth'),
    distill=dict(
        fpn=dict(type='FeatureImitation', student='neck', teacher='neck',
                 loss_weight=0.5)),
    probe_size=(128, 128))
