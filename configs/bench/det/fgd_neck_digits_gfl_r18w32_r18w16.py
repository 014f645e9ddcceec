# FGD (Yang et al., CVPR 2022) on the digits benchmark: focal (gt-box
# scale-weighted masks, teacher attention at T = 0.5, attention L1) and
# global (GcBlock relation) distillation of every FPN level, through 1x1
# adaptors (32 -> 64 channels); the paper's RetinaNet weights.
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
        fpn=dict(type='FocalGlobalKD', student='neck', teacher='neck',
                 adaptor=dict(type='ConvAdaptor'), temperature=0.5,
                 alpha_fg=1e-3, beta_bg=5e-4, gamma_attention=5e-4,
                 lambda_global=5e-6)),
    probe_size=(128, 128))
