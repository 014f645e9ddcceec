# Deep Mutual Learning (Zhang et al., CVPR 2018) on the digits benchmark:
# the student and a peer of its own architecture (GFL ResNet-18 base 16),
# both from scratch, each trained with its task loss and with KD from the
# other through the head views: LD's main-region terms (box-distribution
# KD, tau = 10, weight 0.25; class KD, tau = 2, weight 10, the det row
# `ld`'s), one copy per direction. The term reading a model as teacher
# never sends it gradients. No external teacher and no checkpoint; the
# student's AP is the row.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

mutual = dict(
    ld=dict(type='LocalizationDistillation', region='main', temperature=10,
            loss_weight=0.25),
    cls_kd=dict(type='HeadClassificationKD', region='main', temperature=2,
                loss_weight=10))

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(peer=dict(
        role='peer',
        config='{{ fileDirname }}/../_base_/digits_gfl_r18w16.py')),
    distill=dict(
        ld_to_student=dict(mutual['ld'], teacher_model='peer'),
        cls_to_student=dict(mutual['cls_kd'], teacher_model='peer'),
        ld_to_peer=dict(mutual['ld'], student_model='peer',
                        teacher_model='student'),
        cls_to_peer=dict(mutual['cls_kd'], student_model='peer',
                         teacher_model='student')),
    probe_size=(128, 128))
