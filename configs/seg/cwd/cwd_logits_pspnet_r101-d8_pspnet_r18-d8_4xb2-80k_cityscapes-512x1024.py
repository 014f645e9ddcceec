# CWD (Shu et al., ICCV 2021) on the score maps: per class channel, a softmax
# over H x W at tau = 4, KL teacher -> student, weight 3.
# PSPNet-R101 -> PSPNet-R18 on Cityscapes; the student config is unchanged.
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/pspnet_r101-d8_512x1024_80k_cityscapes/pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint=teacher_ckpt),
    distill=dict(
        cwd=dict(type='ChannelWiseKD', student='decode_head.conv_seg',
                 teacher='decode_head.conv_seg', temperature=4.0,
                 loss_weight=3.0)))
