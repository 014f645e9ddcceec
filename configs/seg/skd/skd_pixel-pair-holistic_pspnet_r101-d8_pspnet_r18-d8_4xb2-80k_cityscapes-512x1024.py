# SKD ablation, step 3: pixel (weight 10) + pair-wise (weight 1) + holistic
# adversarial KD. A WGAN-GP discriminator (spectral-norm 4x4 stride-2 convs
# 64/128/256/512, self-attention after the last two) scores (image, softmax
# map) pairs; teacher maps are real, student maps fake; lambda_d = 0.1,
# gradient penalty 10. The discriminator has its own optimizer (SGD lr 4e-4,
# poly 0.9); the student's optim_wrapper and schedule of the base config are
# kept unchanged as the 'student' entries. On several GPUs the distiller is
# wrapped in mmkd.AdversarialDistillerDDP (DDP over the student and adaptors,
# discriminator gradients averaged over ranks in its own step).
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
                  loss_weight=1.0),
        holistic=dict(type='HolisticAdversarialKD',
                      student='decode_head.conv_seg',
                      teacher='decode_head.conv_seg',
                      discriminator=dict(type='ScoreMapDiscriminator',
                                         widths=(64, 128, 256, 512)),
                      gp_weight=10.0, discriminator_steps=1,
                      loss_weight=0.1)))

optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.AdversarialOptimWrapperConstructor',
    student={{_base_.optim_wrapper}},
    discriminator=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=4e-4, momentum=0.9,
                       weight_decay=5e-4)))
param_scheduler = dict(
    _delete_=True,
    student={{_base_.param_scheduler}},
    discriminator=[
        dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000,
             by_epoch=False)
    ])
model_wrapper_cfg = dict(
    type='mmkd.AdversarialDistillerDDP',
    broadcast_buffers=False,
    find_unused_parameters=False)
