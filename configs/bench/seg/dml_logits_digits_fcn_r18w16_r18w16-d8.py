# Deep Mutual Learning (Zhang et al., CVPR 2018) on the digits benchmark's
# segmentation suite: the student and a peer of its own architecture (FCN
# on a dilated ResNetV1c-18 base 16), both from scratch, each trained with
# its cross-entropy and with the pixel-wise KL of the other's score maps
# (T = 1, weight 1: DML's D_KL(p_peer || p_student) with its weight),
# one term per direction. No external teacher; the student's mIoU is the
# row.
_base_ = '../_base_/digits_fcn_r18w16-d8.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

mutual = dict(type='PixelwiseKD', student='decode_head.conv_seg',
              teacher='decode_head.conv_seg', temperature=1.0,
              loss_weight=1.0)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(peer=dict(
        role='peer',
        config='{{ fileDirname }}/../_base_/digits_fcn_r18w16-d8.py')),
    distill=dict(
        to_student=dict(mutual, teacher_model='peer'),
        to_peer=dict(mutual, student_model='peer', teacher_model='student')),
    probe_size=(128, 128))
