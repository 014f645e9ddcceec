# LD (Zheng et al., CVPR 2022) on the digits benchmark, the paper's recipe:
# box-distribution KD (tau = 10) in the main region (ATSS positives,
# weighted by the student's max class score, weight 0.25) and the valuable
# localization region (weight 0.25), class KD in the main region (tau = 2,
# weight 10). Both GFL heads lay out the same priors (strides 8/16/32, one
# anchor, 10 classes, reg_max 16). The teacher is CrossKD's (head width
# 32, see crosskd_head_digits_gfl_r18w32-head32_r18w16.py): LD on the same
# teacher, for a fair comparison.
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
        ld=dict(type='LocalizationDistillation', region='main',
                temperature=10, loss_weight=0.25),
        ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                    temperature=10, vlr_low=0.25, loss_weight=0.25),
        cls_kd=dict(type='HeadClassificationKD', region='main',
                    temperature=2, loss_weight=10)),
    probe_size=(128, 128))
