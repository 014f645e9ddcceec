# A recipe candidate (issue 22's search, seeds 0-2): the det recipe with
# PKD (the det row `pkd`: Pearson correlation of the neck levels, weight
# 10) in place of plain FPN feature imitation, beside LD's main and
# valuable-localization terms and its class KD (PKD + a head term is the
# published CrossKD + PKD recipe's shape), each term with its
# single-method weight.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './pkd_neck_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(
    ld=dict(type='LocalizationDistillation', region='main', temperature=10,
            loss_weight=0.25),
    ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                temperature=10, vlr_low=0.25, loss_weight=0.25),
    cls_kd=dict(type='HeadClassificationKD', region='main', temperature=2,
                loss_weight=10)))
