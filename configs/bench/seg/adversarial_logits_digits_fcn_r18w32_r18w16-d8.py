# SKD's holistic adversarial term alone on the digits benchmark (issue 22:
# each design-card term on its own): a WGAN-GP critic on (image, softmax
# map), lambda_d = 0.1, gradient penalty 10, with the critic and its Adam
# optimizer of the `pixel+pair+adversarial` row.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './pixel-pair-adversarial_logits-head_digits_fcn_r18w32_r18w16-d8.py'

model = dict(distill=dict(_delete_=True, holistic=dict(
    type='HolisticAdversarialKD', student='decode_head.conv_seg',
    teacher='decode_head.conv_seg',
    discriminator=dict(type='ScoreMapDiscriminator',
                       widths=(32, 64, 128, 256)),
    gp_weight=10.0, loss_weight=0.1)))
