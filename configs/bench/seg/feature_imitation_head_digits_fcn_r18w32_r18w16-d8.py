# Feature imitation (FitNets-style hint) on the digits benchmark: MSE
# between the student's FCN head features through a 1x1 adaptor
# (32 -> 64 channels) and the teacher's, every pixel, weight 1.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = '../_base_/digits_fcn_r18w16-d8.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_fcn_r18w32-d8.py',
        checkpoint='work_dirs/bench/seg_teacher.pth'),
    distill=dict(
        features=dict(type='FeatureImitation', student='decode_head.convs',
                      teacher='decode_head.convs', loss_weight=1.0)),
    probe_size=(128, 128))
