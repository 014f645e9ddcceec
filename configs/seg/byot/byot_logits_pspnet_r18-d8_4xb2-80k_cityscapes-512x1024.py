# Be Your Own Teacher (BYOT, Zhang et al., ICCV 2019) for a segmentor
# without a teacher: PSPNet R18-D8 on Cityscapes 80k trains an auxiliary
# copy of its PSP decode head on the stage before the student's (C4), with
# its cross-entropy at BYOT's 1 - alpha = 0.7 and the pixel-wise KL from
# the student's score maps (tau = 3, alpha = 0.3). mmseg's own FCN
# auxiliary head stays as the config has it. The BYOT head is dropped at
# export:
#   python tools/extract_student.py CONFIG CKPT OUT.pth
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(byot=dict(role='auxiliary', type='mmkd.AuxiliaryHeads',
                            loss_weight=0.7)),
    distill=dict(kd=dict(type='PixelwiseKD', student_model='byot',
                         student='heads.0.conv_seg', teacher_model='student',
                         teacher='decode_head.conv_seg', temperature=3.0,
                         loss_weight=0.3)))
