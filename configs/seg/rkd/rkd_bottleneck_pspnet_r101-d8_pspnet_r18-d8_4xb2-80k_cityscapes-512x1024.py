# RKD (Park et al., CVPR 2019): PSPNet-R101 teacher -> PSPNet-R18 student,
# Cityscapes, 80k. The set of embeddings is the batch's class regions:
# for every class present in an image's label map (nearest-resized to the
# feature map), the mean of the last feature map before the classifier
# (decode_head.bottleneck: 128 channels in the student, 512 in the
# teacher; relations need no adaptor). Distance (weight 25) and angle
# (weight 50) Huber losses over all regions of the batch. The student
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
        rkd=dict(type='RelationalKD', student='decode_head.bottleneck',
                 teacher='decode_head.bottleneck', distance_weight=25.0,
                 angle_weight=50.0)))
