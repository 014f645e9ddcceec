# Born-again networks (Furlanello et al., ICML 2018) on the digits
# benchmark: the student's own architecture as the teacher, generation k
# distilled from generation k - 1 of the same seed (generation 0: the
# student alone), with the det row `ld`'s terms (LD in the main and
# valuable regions, class KD in the main region; same priors by
# construction). tools/benchmark/accuracy.py fills in the previous
# generation's checkpoint; tools/born_again.py runs the same chain on any
# distill config.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_gfl_r18w16.py',
        checkpoint='work_dirs/bench/det_previous_generation.pth'),
    distill=dict(
        ld=dict(type='LocalizationDistillation', region='main',
                temperature=10, loss_weight=0.25),
        ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                    temperature=10, vlr_low=0.25, loss_weight=0.25),
        cls_kd=dict(type='HeadClassificationKD', region='main',
                    temperature=2, loss_weight=10)),
    probe_size=(128, 128))
