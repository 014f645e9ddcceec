# NST (Huang & Wang, 2017) on the digits benchmark: per FPN level and image
# the squared MMD between the L2-normalised channel vectors (32 student,
# 64 teacher channels; no adaptor), kernel (x.y)^2, levels summed; the
# authors' lambda = 50.
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
        fpn=dict(type='NeuronSelectivityTransfer', student='neck',
                 teacher='neck', kernel='poly', degree=2, coef=0.0,
                 loss_weight=50.0)),
    probe_size=(128, 128))
