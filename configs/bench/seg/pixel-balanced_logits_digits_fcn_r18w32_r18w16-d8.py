# Pixel-wise KD with a class-balanced mean: the row that tests whether the
# background's share of the pixels is why the term hurts the digits
# student at 3000 iterations (docs/evidence.md). The KL is averaged within
# each class the teacher predicts, then over those classes, so the
# background (most of each scene) weighs as much as each digit present.
# T 1 and weight 10 (SKD's) are kept.
_base_ = './pixel_logits_digits_fcn_r18w32_r18w16-d8.py'

model = dict(distill=dict(logits=dict(class_balanced=True)))
