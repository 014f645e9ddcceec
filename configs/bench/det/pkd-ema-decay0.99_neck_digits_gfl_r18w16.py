# PKD from a mean teacher (Tarvainen & Valpola, NeurIPS 2017): the det row
# `pkd` (weight 10, a 1x1 adaptor per level, here 32 -> 32) against an
# exponential moving average of the student itself, updated after each
# step, no external teacher and no checkpoint. Decay 0.99, chosen after the
# det row `pkd_ema` (decay 0.999) lost AP: over 600 iterations the 0.999
# ramp min(0.999, 1 - 1/(u + 1)) keeps the teacher the plain mean of every
# iterate since initialisation; 0.99 forgets them after ~100 steps.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(mean=dict(role='ema', decay=0.99)),
    distill=dict(
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 teacher_model='mean', adaptor=dict(type='ConvAdaptor'),
                 loss_weight=10.0)),
    probe_size=(128, 128))
