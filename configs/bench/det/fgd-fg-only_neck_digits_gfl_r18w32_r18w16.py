# FGD on the digits benchmark with its foreground focal term alone (alpha
# 1e-3; beta, gamma and lambda 0), the rest as the `fgd` row: one part of
# the ablation of why FGD costs AP at 1200 iterations.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './fgd_neck_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(fpn=dict(beta_bg=0.0, gamma_attention=0.0,
                                   lambda_global=0.0)))
