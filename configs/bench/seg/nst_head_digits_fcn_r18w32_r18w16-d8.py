# NST (Huang & Wang, 2017) on the digits benchmark: the FCN head features
# before the classifier (32 student, 64 teacher channels; no adaptor),
# per image the squared MMD between the L2-normalised channel vectors,
# kernel (x.y)^2; the authors' lambda = 50.
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
        features=dict(type='NeuronSelectivityTransfer',
                      student='decode_head.convs',
                      teacher='decode_head.convs', kernel='poly',
                      loss_weight=50.0)),
    probe_size=(128, 128))
