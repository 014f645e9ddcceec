# FGD on the digits benchmark with all four of the paper's RetinaNet
# weights divided by 10 (alpha 1e-4, beta 5e-5, gamma 5e-5, lambda 5e-7),
# the rest as the `fgd` row: at 1200 iterations FGD at the paper's weights
# is a loss about 35 times the student's own detection losses in the first
# third of training and costs AP; this row tests whether the weights are
# the cause.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './fgd_neck_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(fpn=dict(alpha_fg=1e-4, beta_bg=5e-5,
                                   gamma_attention=5e-5,
                                   lambda_global=5e-7)))
