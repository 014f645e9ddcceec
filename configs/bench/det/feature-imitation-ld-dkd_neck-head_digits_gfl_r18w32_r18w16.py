# A recipe candidate (issue 22's search, seeds 0-2): the det recipe with
# decoupled KD (the det row `dkd`: TCKD + NCKD on GFL's sigmoid classifier,
# alpha 1, beta 8) in place of LD's class KD (tau 2, weight 10), beside FPN
# feature imitation and LD's main and valuable-localization terms, each
# term with its single-method weight.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './feature_imitation_neck_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(
    ld=dict(type='LocalizationDistillation', region='main', temperature=10,
            loss_weight=0.25),
    ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                temperature=10, vlr_low=0.25, loss_weight=0.25),
    cls=dict(type='DecoupledHeadKD', alpha=1.0, beta=8.0, temperature=1.0,
             region='valid', loss_weight=1.0)))
