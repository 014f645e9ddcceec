# Decoupled KD (Zhao et al., CVPR 2022) on the digits benchmark, adapted
# to GFL's per-class sigmoid classifier: alpha * TCKD (binary KL of the
# student's assigned class; none at background priors) + beta * NCKD
# (binary KL of every other class), alpha = 1, beta = 8, tau = 1, over all
# valid priors divided by the head's positives, weight 1. Classification
# only: set it beside the `soft_targets` row (classification only) and
# the `bckd` row (BCKD's class term + its box term).
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
        cls=dict(type='DecoupledHeadKD', alpha=1.0, beta=8.0,
                 temperature=1.0, region='valid', loss_weight=1.0)),
    probe_size=(128, 128))
