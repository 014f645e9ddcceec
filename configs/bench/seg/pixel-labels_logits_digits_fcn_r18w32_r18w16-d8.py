# Pixel-wise KD compared at the labels' resolution: the row that tests
# whether the resolution of the compared maps is why the term hurts the
# digits student at 3000 iterations (docs/evidence.md). SKD compares the
# score maps as they are, 16x16 for this output-stride-8 FCN; the decode
# head's cross-entropy compares them after a bilinear resize to the
# 128x128 labels. With resolution='labels' both maps are resized first,
# so the KL sees what the cross-entropy sees. T 1 and weight 10 (SKD's)
# are kept.
_base_ = './pixel_logits_digits_fcn_r18w32_r18w16-d8.py'

model = dict(distill=dict(logits=dict(resolution='labels')))
