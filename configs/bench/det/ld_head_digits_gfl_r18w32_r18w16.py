# LD (Zheng et al., CVPR 2022) on the digits benchmark: the teacher's
# GFL box distributions in the main region (student positives, tau = 10,
# 0.25) and the valuable localization region (0.25), and class KD in the
# main region (tau = 2, 10): the paper's weights.
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
                loss_weight=0.25),
        ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                    loss_weight=0.25),
        cls_kd=dict(type='HeadClassificationKD', temperature=2,
                    loss_weight=10)),
    probe_size=(128, 128))
