# Deep Mutual Learning (Zhang et al., CVPR 2018) for segmentation: the
# PSPNet-R18 student learns together with a PSPNet-R101 peer (ImageNet
# backbones, heads from scratch) on Cityscapes 80k, each with its own
# losses and with the pixel-wise KL of the other's score maps (T = 1,
# weight 1: DML's D_KL(p_peer || p_student)), one term per direction. A
# term never sends gradients into the model it reads as teacher; export
# either model with tools/extract_student.py [--model peer].
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
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
        config='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py'
    )),
    distill=dict(
        to_student=dict(mutual, teacher_model='peer'),
        to_peer=dict(mutual, student_model='peer', teacher_model='student')))
