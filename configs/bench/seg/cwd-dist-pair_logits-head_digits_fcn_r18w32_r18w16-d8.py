# A recipe candidate (issue 22's search, seeds 0-2): the seg recipe (CWD +
# DIST on the class logits) plus SKD's pair-wise affinity on the decode
# head's features (the seg row `pair`, the only SKD term that did not cost
# mIoU on its own at 3000 iterations), each term with its single-method
# weight.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './cwd-dist_logits_digits_fcn_r18w32_r18w16-d8.py'

model = dict(distill=dict(pair=dict(
    type='PairwiseAffinityKD', student='decode_head.convs',
    teacher='decode_head.convs', region=2, loss_weight=1.0)))
