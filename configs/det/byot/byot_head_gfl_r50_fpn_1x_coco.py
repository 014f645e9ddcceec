# Be Your Own Teacher (BYOT, Zhang et al., ICCV 2019) for a dense detector
# without a teacher: GFL-R50 on COCO 1x trains one auxiliary copy of its
# head on C3-C4 (through a light FPN giving P3-P7 at the student's strides,
# so the auxiliary priors are the student's), with the auxiliary task loss
# at BYOT's 1 - alpha = 0.7 and KD from the deepest head: class KD
# (tau = 3, alpha = 0.3), LD on the box distributions (tau = 10, weight
# 0.25) and BYOT's feature hint (weight 0.03) on the neck. The student's
# own head and neck get no KD gradient; its backbone learns from the
# auxiliary losses through the shared stages. The auxiliary head and neck
# are dropped at export:
#   python tools/extract_student.py CONFIG CKPT OUT.pth
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(byot=dict(role='auxiliary', type='mmkd.AuxiliaryHeads',
                            heads=[dict(in_indices=(1, 2))],
                            loss_weight=0.7)),
    distill=dict(
        cls=dict(type='HeadClassificationKD', student_model='byot',
                 head='heads.0', teacher_model='student',
                 teacher_head='bbox_head', temperature=3, loss_weight=0.3),
        ld=dict(type='LocalizationDistillation', student_model='byot',
                head='heads.0', teacher_model='student',
                teacher_head='bbox_head', temperature=10, loss_weight=0.25),
        hint=dict(type='FeatureImitation', student_model='byot',
                  student='necks.0', teacher_model='student',
                  teacher='neck', loss_weight=0.03)))
