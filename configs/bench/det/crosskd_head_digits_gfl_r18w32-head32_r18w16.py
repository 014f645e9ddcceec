# CrossKD (Wang et al., CVPR 2024) on the digits benchmark: the student head's
# features after its first stacked conv (of 2: the paper's index 3 of 4, i.e.
# the teacher's last conv and predictors) are renormalised to the teacher's
# channel statistics and run through the rest of the frozen teacher head;
# those predictions mimic the teacher's (binary KD x |score gap|, beta 1,
# weight 1; edge-distribution KL, T = 1, weighted by the teacher's max
# score, weight 4), the paper's GFL settings. The teacher has the student's
# head width (32), so the features fit its head; see
# ../_base_/digits_gfl_r18w32-head32.py.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_gfl_r18w32-head32.py',
        checkpoint='work_dirs/bench/det_samehead_teacher.pth'),
    distill=dict(
        cross=dict(type='CrossHeadKD', reuse_index=1, beta=1.0,
                   cls_weight=1.0, reg_weight=4.0, reg_loss='kl',
                   temperature=1.0)),
    probe_size=(128, 128))
