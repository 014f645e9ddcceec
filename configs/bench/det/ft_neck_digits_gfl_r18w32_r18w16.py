# FT (Kim et al., NeurIPS 2018) on the digits benchmark: one paraphraser
# (3x3 convs 64 -> 64 -> 32 -> 32 and back, LeakyReLU 0.1) per FPN level
# of the teacher, one translator (32 -> 32 -> 32 -> 32) per level of the
# student; the paper's k = 0.5 and beta = 500. Stage 1 is the first 150
# of the 600 student iterations: the paraphrasers alone learn to
# reconstruct the teacher's maps (the student trains on its task losses);
# then the student and translators match the frozen paraphrasers' factors
# for 450 iterations. Why 150: trained alone on this teacher's neck maps
# (64 train images, batches of 8, the harness's AdamW lr 0.002, wd 0.05,
# constant lr), the reconstruction MSE relative to each level's mean
# square fell to 0.23 / 0.04 / 0.07 (P3 / P4 / P5) after 100 steps and
# 0.19 / 0.03 / 0.07 after 200, flattening; the harness warms the lr up
# from 1 % over the first 60 iterations, so 150 iterations are about 120
# full-lr steps. The authors train the paraphraser 5 epochs for a
# 163-epoch student (3 %), but 3 % of 600 is 18 steps, far from trained.
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
        fpn=dict(type='FactorTransfer', student='neck', teacher='neck',
                 paraphraser_iters=150, rate=0.5, loss_weight=500)),
    probe_size=(128, 128))
