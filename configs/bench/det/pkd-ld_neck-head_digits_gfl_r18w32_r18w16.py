# A recipe candidate (issue 22's search, seeds 0-2): the det recipe with
# PKD (the det row `pkd`: Pearson correlation of the neck levels, weight
# 10) in place of plain FPN feature imitation, beside LD's main and
# valuable-localization terms and its class KD (PKD + a head term is the
# published CrossKD + PKD recipe's shape), each term with its
# single-method weight.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './feature-imitation-ld_neck-head_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(fpn=dict(
    _delete_=True, type='PearsonFeatureKD', student='neck', teacher='neck',
    adaptor=dict(type='ConvAdaptor'), loss_weight=10.0)))
