# CWD (Shu et al., ICCV 2021) on the digits benchmark: per channel of each
# FPN level a spatial softmax (tau = 1), KL to the teacher's, x tau^2/(N*C),
# through 1x1 adaptors (32 -> 64 channels); the paper's FPN weight 10.
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
        fpn=dict(type='ChannelWiseKD', student='neck', teacher='neck',
                 adaptor=dict(type='ConvAdaptor'), temperature=1.0,
                 loss_weight=10.0)),
    probe_size=(128, 128))
