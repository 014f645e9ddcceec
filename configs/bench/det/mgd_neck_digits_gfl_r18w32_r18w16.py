# MGD (Yang et al., ECCV 2022) on the digits benchmark: 65 % of the
# student's FPN locations masked at random, a generation block (3x3 conv,
# ReLU, 3x3 conv) per level regresses the teacher's whole map, through 1x1
# adaptors (32 -> 64 channels); the paper's detection weight 2e-5.
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
        fpn=dict(type='MaskedGenerativeKD', student='neck', teacher='neck',
                 adaptor=dict(type='ConvAdaptor'), mask_ratio=0.65,
                 loss_weight=2e-5)),
    probe_size=(128, 128))
