# SKD ablation, step 2 (Liu et al., CVPR 2019): pixel-wise KD (T = 1,
# weight 10) + pair-wise KD on the last feature map before the classifier
# (decode_head.bottleneck: 128 channels in the student, 512 in the teacher;
# affinities need no adaptor), nodes = max-pooled 2x2 regions, weight 1
# (paper 0.5-1). PSPNet-R101 -> PSPNet-R18 on Cityscapes; the student
# config is MMSegmentation's own, unchanged.
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
        pixel=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                   teacher='decode_head.conv_seg', loss_weight=10.0),
        pair=dict(type='PairwiseAffinityKD',
                  student='decode_head.bottleneck',
                  teacher='decode_head.bottleneck', region=2,
                  loss_weight=1.0)))
