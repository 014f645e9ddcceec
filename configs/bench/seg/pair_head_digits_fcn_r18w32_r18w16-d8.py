# SKD's pair-wise term alone on the digits benchmark (issue 22: each
# design-card term on its own): cosine affinities between max-pooled 2x2
# regions of the FCN head features (16x16 maps -> 64 nodes; 32 vs 64
# channels, no adaptor needed), weight 1 (SKD's). The `pixel+pair` row
# adds it to pixel-wise KD, which costs the student on its own here.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './pixel-pair_logits-head_digits_fcn_r18w32_r18w16-d8.py'

model = dict(distill=dict(_delete_=True, pair=dict(
    type='PairwiseAffinityKD', student='decode_head.convs',
    teacher='decode_head.convs', region=2, loss_weight=1.0)))
