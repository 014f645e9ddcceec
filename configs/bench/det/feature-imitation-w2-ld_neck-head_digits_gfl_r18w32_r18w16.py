# A recipe candidate (issue 22's search, seeds 0-2): the det recipe (FPN
# feature imitation + LD's main and valuable-localization terms and its
# class KD) with the feature term at twice its single-method weight (2
# instead of 1): feature imitation is the strongest single det term.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './feature-imitation-ld_neck-head_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(fpn=dict(loss_weight=2.0)))
