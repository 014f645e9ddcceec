# The `bckd` row with logit standardisation (Sun et al., CVPR 2024) on its
# classification term: each prior's 10 class logits z-scored over the
# classes (both sides) before the base temperature 2 (the authors') and
# the per-class sigmoids; the box term (GIoU weighted by the largest
# score gap, weight 4) unchanged. Compare it pair by pair with `bckd`.
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
        cls=dict(type='BinaryClassificationKD', beta=1.0, loss_weight=1.0,
                 standardize_logits=True, temperature=2.0),
        box=dict(type='IoULocalizationKD', loss_weight=4.0)),
    probe_size=(128, 128))
