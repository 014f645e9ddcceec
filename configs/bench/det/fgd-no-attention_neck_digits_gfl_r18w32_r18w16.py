# FGD on the digits benchmark without its attention-matching term (gamma
# 0), the rest as the `fgd` row: one part of the ablation of why FGD costs
# AP at 1200 iterations.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './fgd_neck_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(fpn=dict(gamma_attention=0.0)))
