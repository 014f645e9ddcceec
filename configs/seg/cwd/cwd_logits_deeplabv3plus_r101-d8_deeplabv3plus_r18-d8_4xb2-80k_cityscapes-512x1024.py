# CWD (Shu et al., ICCV 2021) on the score maps, tau = 4, weight 3:
# DeepLabV3+-R101 -> DeepLabV3+-R18 on Cityscapes; the student config is
# MMSegmentation's own, unchanged.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r101-d8_512x1024_80k_cityscapes/deeplabv3plus_r101-d8_512x1024_80k_cityscapes_20200606_114143-068fcfe9.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmseg::deeplabv3plus/'
        'deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint=teacher_ckpt),
    distill=dict(
        cwd=dict(type='ChannelWiseKD', student='decode_head.conv_seg',
                 teacher='decode_head.conv_seg', temperature=4.0,
                 loss_weight=3.0)))
