# The `ld` row with logit standardisation (Sun et al., CVPR 2024) on its
# class KD: each main-region prior's 10 class logits z-scored over the
# classes (both sides) before the softmax at the base temperature 2 (the
# authors' base, the row's own tau), weight 10 as in the row; the two LD
# terms (main and valuable region, tau = 10, weight 0.25) unchanged.
# Compare it pair by pair with `ld`.
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
        ld=dict(type='LocalizationDistillation', region='main',
                temperature=10, loss_weight=0.25),
        ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                    temperature=10, vlr_low=0.25, loss_weight=0.25),
        cls_kd=dict(type='HeadClassificationKD', region='main',
                    temperature=2, loss_weight=10,
                    standardize_logits=True)),
    probe_size=(128, 128))
