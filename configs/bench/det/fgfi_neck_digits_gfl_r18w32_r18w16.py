# FGFI (Wang et al., CVPR 2019) on the digits benchmark: imitation of the
# three FPN levels near objects (anchor-IoU mask, psi = 0.5), loss
# sum I * (A(s) - t)^2 / (2 N_p) through 1x1 adaptors (32 -> 64 channels).
# The paper's lambda = 0.01 and 400-iteration delay belong to VGG features
# and a 10k-iteration schedule; with 64 channels summed, lambda = 0.03 is a
# per-element weight of about 1 (the demo's plain imitation) and the delay
# is shortened to 50 of the benchmark's 550 iterations.
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
        fpn=dict(type='FeatureImitation', student='neck', teacher='neck',
                 mask=dict(type='FGFIMask', thr=0.5), normalize='fgfi',
                 loss_weight=0.03, warmup_iters=50)),
    probe_size=(128, 128))
