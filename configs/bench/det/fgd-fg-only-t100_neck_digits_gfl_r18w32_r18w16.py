# FGD's foreground focal term alone (as `fgd-fg-only`) at temperature 100
# instead of 0.5, where both of the teacher's attentions are nearly
# uniform (A^S ~ 1, A^C ~ 1): the squared error in the boxes' cells with
# FGD's 1/(h*w) box weighting only. Separates the attention weighting from
# the box weighting in the ablation of why FGD costs AP at 1200
# iterations.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './fgd-fg-only_neck_digits_gfl_r18w32_r18w16.py'

model = dict(distill=dict(fpn=dict(temperature=100.0)))
