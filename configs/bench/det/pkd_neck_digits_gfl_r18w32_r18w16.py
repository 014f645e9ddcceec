# PKD (Cao et al., NeurIPS 2022) on the digits benchmark: each channel of
# each FPN level standardised over (N, H, W), MSE / 2 (= 1 - Pearson r),
# through 1x1 adaptors (32 -> 64 channels); the paper's RetinaNet weight 10.
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
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 adaptor=dict(type='ConvAdaptor'), loss_weight=10.0)),
    probe_size=(128, 128))
