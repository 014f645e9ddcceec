# Chen et al. (NeurIPS 2017), the full recipe, on the digits Faster R-CNN
# pair: hint learning on the FPN (1x1 adaptor, gamma = 0.5), and on both
# stages background-weighted soft targets (w0 = 1.5, mu = 0.5) and
# teacher-bounded regression (m = 0.2, nu = 0.5). The R-CNN terms read the
# teacher's R-CNN head on the student's sampled RoIs. The paper's values
# (m, nu, mu unverified), untuned here. tools/benchmark/accuracy.py fills
# in the teacher checkpoint.
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
        hint=dict(type='FeatureImitation', student='neck', teacher='neck',
                  loss_weight=0.5),
        rpn_soft=dict(type='BackgroundWeightedSoftTargets', head='rpn_head',
                      mu=0.5, background_weight=1.5),
        rpn_box=dict(type='TeacherBoundedRegression', head='rpn_head',
                     margin=0.2, loss_weight=0.5),
        rcnn_soft=dict(type='RoIBackgroundWeightedSoftTargets', mu=0.5,
                       background_weight=1.5),
        rcnn_box=dict(type='RoITeacherBoundedRegression', margin=0.2,
                      loss_weight=0.5)),
    probe_size=(128, 128))
