# AB (Heo et al., AAAI 2019) on the digits benchmark: the sign pattern of
# the teacher's FPN outputs (convs without activation) matched by the
# hinge-squared loss with margin 1 on the student's through 1x1 conv + BN
# connectors (32 -> 64 channels), mean over elements per level, levels
# summed, weight 1 (ours; no detection weight is published).
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
        fpn=dict(type='ActivationBoundaryKD', student='neck',
                 teacher='neck', margin=1.0,
                 adaptor=dict(type='ConvAdaptor', norm_cfg=dict(type='BN')),
                 normalize='mean', loss_weight=1.0)),
    probe_size=(128, 128))
