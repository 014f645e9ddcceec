# PKD (Cao et al., NeurIPS 2022) from an ATSS teacher to the GFL student: the
# det row `pkd` (each FPN level's channels standardised over (N, H, W),
# MSE / 2, 1x1 adaptors 32 -> 64, weight 10) with the teacher
# _base_/digits_atss_r18w32.py (same widths and FPN levels as the GFL one).
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_atss_r18w32.py',
        checkpoint='work_dirs/bench/det_atss_teacher.pth'),
    distill=dict(
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 adaptor=dict(type='ConvAdaptor'), loss_weight=10.0)),
    probe_size=(128, 128))
