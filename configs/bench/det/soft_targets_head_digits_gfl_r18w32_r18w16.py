# Background-weighted soft targets (Chen et al., NeurIPS 2017) on the
# digits benchmark: soft cross-entropy to the teacher's scores with the
# negatives' side weighted w0 = 1.5 (GFL classifies with sigmoids),
# mu = 0.5.
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
        soft=dict(type='BackgroundWeightedSoftTargets', mu=0.5,
                  background_weight=1.5, normalizer='avg_factor')),
    probe_size=(128, 128))
