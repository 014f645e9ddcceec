# On-the-fly Native Ensemble (ONE, Lan et al., NeurIPS 2018) for a
# segmentor without a teacher: PSPNet R18-D8 on Cityscapes 80k trains two
# extra copies of its PSP decode head on the backbone maps (three
# branches; the student's head is branch 0, the one kept), a gate (per
# image, a softmax over the branches of a linear layer on the pooled map
# the decode head reads) and the gated sum of the three logit maps,
# trained with the decode head's cross-entropy. The ensemble (detached)
# teaches every branch with the pixel-wise KL (ONE's T = 3, weight 1).
# mmseg's FCN auxiliary head stays as the config has it. Export keeps
# branch 0:
#   python tools/extract_student.py CONFIG CKPT OUT.pth
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

kd = dict(type='PixelwiseKD', teacher_model='one', teacher='ensemble',
          temperature=3.0, loss_weight=1.0)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(one=dict(role='auxiliary', type='mmkd.GatedBranchEnsemble',
                           num_branches=3)),
    distill=dict(
        kd=dict(kd, student='decode_head.conv_seg'),
        kd_branch0=dict(kd, student_model='one',
                        student='branches.0.conv_seg'),
        kd_branch1=dict(kd, student_model='one',
                        student='branches.1.conv_seg')))
