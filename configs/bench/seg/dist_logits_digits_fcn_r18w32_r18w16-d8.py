# DIST (Huang et al., NeurIPS 2022) on the digits benchmark: inter-class
# (per pixel) and intra-class (per class) Pearson relations of the softmax
# score maps, beta = gamma = 1, tau = 1, weight 1.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = '../_base_/digits_fcn_r18w16-d8.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_fcn_r18w32-d8.py',
        checkpoint='work_dirs/bench/seg_teacher.pth'),
    distill=dict(
        logits=dict(type='DISTKD', student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', loss_weight=1.0)),
    probe_size=(128, 128))
