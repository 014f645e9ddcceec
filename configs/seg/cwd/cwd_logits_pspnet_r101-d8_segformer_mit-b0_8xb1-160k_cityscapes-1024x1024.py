# A CNN teacher for a transformer student: CWD (tau = 4, weight 3) from
# PSPNet-R101 (score maps at 1/8 of the input) to SegFormer MiT-B0 (1/4):
# the student's map is resized to the teacher's H x W before the per-channel
# softmax. The student config is MMSegmentation's own, unchanged.
_base_ = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
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
