# Be Your Own Teacher (BYOT, Zhang et al., ICCV 2019) on the digits
# benchmark: the student (GFL ResNet-18 base 16) trains, beside its own
# head, one auxiliary copy of its head on its shallower stages (C3-C4
# through a light FPN that gives the student's levels, so the priors line
# up); the auxiliary head has its task loss at BYOT's 1 - alpha = 0.7 and
# learns from the student's (deepest) head: class KD (tau = 3, BYOT's
# alpha = 0.3), LD on the box distributions (LD's tau = 10, weight 0.25)
# and BYOT's feature hint on the neck (weight 0.03). The student's head
# is never taught; its backbone learns from the auxiliary losses through
# the shared stages. No teacher; the auxiliary head is dropped at export.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(byot=dict(role='auxiliary', type='mmkd.AuxiliaryHeads',
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
                  teacher='neck', loss_weight=0.03)),
    probe_size=(128, 128))
