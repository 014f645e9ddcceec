# Teacher-bounded regression (Chen et al., NeurIPS 2017) on the digits
# benchmark: L2 to the target on the student's positives, in the encoding
# the head trains on, only while the student is not better than the
# teacher by margin m = 0.2; nu = 0.5.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_gfl_r18w32.py',
        checkpoint='work_dirs/bench/det_teacher.pth'),
    distill=dict(
        box=dict(type='TeacherBoundedRegression', margin=0.2,
                 loss_weight=0.5)),
    probe_size=(128, 128))
