# SKD's three terms on the digits benchmark: pixel-wise (weight 10),
# pair-wise (weight 1) and holistic adversarial (WGAN-GP critic on
# (image, softmax map), lambda_d = 0.1, gradient penalty 10). The critic is
# narrower than SKD's (widths 32/64/128/256 on 16x16 score maps) and,
# for a run of a few hundred iterations, trained with Adam (lr 1e-4,
# betas 0.5/0.9, as in the WGAN-GP paper) rather than SKD's SGD 4e-4.
# The harness must keep `optim_wrapper.discriminator` and put its own
# optimizer and schedule in the 'student' entries (see configs/bench/README).
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = '../_base_/digits_fcn_r18w16-d8.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_fcn_r18w32-d8.py',
        checkpoint='work_dirs/bench/seg_teacher.pth'),
    distill=dict(
        logits=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', temperature=1.0,
                    loss_weight=10.0),
        pair=dict(type='PairwiseAffinityKD', student='decode_head.convs',
                  teacher='decode_head.convs', region=2, loss_weight=1.0),
        holistic=dict(type='HolisticAdversarialKD',
                      student='decode_head.conv_seg',
                      teacher='decode_head.conv_seg',
                      discriminator=dict(type='ScoreMapDiscriminator',
                                         widths=(32, 64, 128, 256)),
                      gp_weight=10.0, loss_weight=0.1)),
    probe_size=(128, 128))

# 'student' is replaced by the harness's own optimizer wrapper
optim_wrapper = dict(
    constructor='mmkd.AdversarialOptimWrapperConstructor',
    student=dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
                 clip_grad=dict(max_norm=10)),
    discriminator=dict(optimizer=dict(type='Adam', lr=1e-4,
                                      betas=(0.5, 0.9))))
