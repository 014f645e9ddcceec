# BCKD (Yang et al., ICCV 2023) on the digits benchmark: per-class binary
# KD over all valid priors (beta = 1, weight 1) and GIoU between the
# student's and the teacher's decoded boxes weighted by the largest score
# gap (weight 4), the paper's GFL settings.
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
        cls=dict(type='BinaryClassificationKD', beta=1.0, loss_weight=1.0),
        box=dict(type='IoULocalizationKD', loss_weight=4.0)),
    probe_size=(128, 128))
