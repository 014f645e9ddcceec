# CWD (Shu et al., ICCV 2021) on the digits benchmark: per class channel of
# the score maps a spatial softmax at tau = 4, KL to the teacher's,
# x tau^2/(N*C); the paper's segmentation weight 3.
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
        logits=dict(type='ChannelWiseKD', student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', temperature=4.0,
                    loss_weight=3.0)),
    probe_size=(128, 128))
