# A recipe: channel-wise distillation of the logits (the seg row `cwd`,
# tau = 4, weight 3) plus DIST's inter- and intra-class relations on the
# same logits (the seg row `dist`, weight 1): CWD matches where each class
# fires, DIST the ranking of classes at each pixel.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './cwd_logits_digits_fcn_r18w32_r18w16-d8.py'

model = dict(distill=dict(
    relations=dict(type='DISTKD', student='decode_head.conv_seg',
                   teacher='decode_head.conv_seg', loss_weight=1.0)))
