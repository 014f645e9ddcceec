# A recipe: FPN feature imitation (the det row `feature_imitation`) plus
# LD's main and valuable-localization terms and class KD on the head (the
# det row `ld`), each term with its single-method weight. Feature terms
# teach where to look; LD teaches the box edges the features alone do not.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './feature_imitation_neck_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(
    ld=dict(type='LocalizationDistillation', region='main', temperature=10,
            loss_weight=0.25),
    ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                temperature=10, vlr_low=0.25, loss_weight=0.25),
    cls_kd=dict(type='HeadClassificationKD', region='main', temperature=2,
                loss_weight=10)))
