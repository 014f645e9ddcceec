# DIST (Huang et al., NeurIPS 2022) on the score maps: inter-class (per
# pixel) and intra-class (per class over pixels) Pearson relations,
# beta = gamma = 1, tau = 1. DeepLabV3-R101 -> DeepLabV3-R18 on Cityscapes;
# the student config is MMSegmentation's own, unchanged.
_base_ = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmseg::deeplabv3/'
        'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint=teacher_ckpt),
    distill=dict(
        dist=dict(type='DISTKD', student='decode_head.conv_seg',
                  teacher='decode_head.conv_seg', temperature=1.0,
                  beta=1.0, gamma=1.0, loss_weight=1.0)))
