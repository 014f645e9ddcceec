# Be Your Own Teacher (BYOT, Zhang et al., ICCV 2019) on the digits
# benchmark's segmentation suite: an auxiliary copy of the student's FCN
# decode head reads the stage before the student's (the output of
# backbone.layer2 of the three-stage dilated ResNetV1c-18 base 16, whose
# backbone outputs its last stage only), trained with its cross-entropy at
# BYOT's 1 - alpha = 0.7 and the pixel-wise KL from the student's score
# maps (tau = 3, alpha = 0.3). No teacher; the auxiliary head is dropped
# at export.
_base_ = '../_base_/digits_fcn_r18w16-d8.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(byot=dict(role='auxiliary', type='mmkd.AuxiliaryHeads',
                            heads=[dict(source='backbone.layer2',
                                        in_indices=0)],
                            loss_weight=0.7)),
    distill=dict(kd=dict(type='PixelwiseKD', student_model='byot',
                         student='heads.0.conv_seg', teacher_model='student',
                         teacher='decode_head.conv_seg', temperature=3.0,
                         loss_weight=0.3)),
    probe_size=(128, 128))
