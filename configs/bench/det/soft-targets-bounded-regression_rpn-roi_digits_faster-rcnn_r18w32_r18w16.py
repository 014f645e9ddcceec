# Ablation of the Chen et al. (2017) recipe on the digits Faster R-CNN pair:
# its head terms alone, no hint: on the RPN and on the R-CNN head (the
# teacher's R-CNN head scoring the student's sampled RoIs)
# background-weighted soft targets (w0 = 1.5, mu = 0.5) and
# teacher-bounded regression (m = 0.2, nu = 0.5), as in the chen2017 row.
# tools/benchmark/accuracy.py fills in the teacher checkpoint.
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
        rpn_soft=dict(type='BackgroundWeightedSoftTargets', head='rpn_head',
                      mu=0.5, background_weight=1.5),
        rpn_box=dict(type='TeacherBoundedRegression', head='rpn_head',
                     margin=0.2, loss_weight=0.5),
        rcnn_soft=dict(type='RoIBackgroundWeightedSoftTargets', mu=0.5,
                       background_weight=1.5),
        rcnn_box=dict(type='RoITeacherBoundedRegression', margin=0.2,
                      loss_weight=0.5)),
    probe_size=(128, 128))
