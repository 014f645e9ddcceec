# AT (Zagoruyko & Komodakis, ICLR 2017) on the digits benchmark: per FPN
# level the attention map sum_c A_c^2, L2-normalised per image, squared
# distance averaged over images and positions, levels summed; no adaptor
# (32 vs 64 channels need none); the paper's beta = 1000.
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
        fpn=dict(type='AttentionTransfer', student='neck', teacher='neck',
                 p=2.0, loss_weight=1000.0)),
    probe_size=(128, 128))
