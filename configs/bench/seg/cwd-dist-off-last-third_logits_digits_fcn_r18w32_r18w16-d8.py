# A recipe candidate (issue 22's search, seeds 0-2): the seg recipe (CWD +
# DIST on the class logits) switched off for the last third of training
# (mmkd.DistillSwitchHook, as MMYOLO's RTMDet recipe trains its last
# epochs without distillation). At 3000 iterations the recipe gains +1.36
# mIoU, but from a stronger teacher at 6000 iterations it costs 0.50: the
# logit terms help while the student is far from its teacher and hold it
# back near its own plateau, so the student finishes on its labels alone.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './cwd-dist_logits_digits_fcn_r18w32_r18w16-d8.py'

custom_hooks = [dict(type='mmkd.DistillSwitchHook', stop_fraction=2 / 3)]
