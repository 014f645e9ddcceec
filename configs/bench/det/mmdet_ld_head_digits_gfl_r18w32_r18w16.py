# The peer: MMDetection 3.3's own LD (Zheng et al., CVPR 2022) on the
# digits benchmark, the row `mmdet_ld` beside ours: its
# KnowledgeDistillationSingleStageDetector with an LDHead, the main region
# only (box-distribution KL at T = 10, weight 0.25; no valuable
# localization region and no class KD). The student's layers are the
# digits GFL student's; the teacher is the digits GFL teacher.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
# mmkd is not used by this model (the harness imports it for the others).
_base_ = '../_base_/digits_gfl_r18w16.py'

model = dict(
    type='KnowledgeDistillationSingleStageDetector',
    teacher_config='{{ fileDirname }}/../_base_/digits_gfl_r18w32.py',
    teacher_ckpt='work_dirs/bench/det_teacher.pth',
    bbox_head=dict(
        type='LDHead',
        loss_ld=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=0.25,
                     T=10)))
