# SKD's pixel-wise + pair-wise terms on the digits benchmark: per-pixel
# T^2 * KL(p_t || p_s) of the 11-class score maps (T = 1, weight 10) and
# cosine affinities between max-pooled 2x2 regions of the FCN head features
# (16x16 maps -> 64 nodes; 32 vs 64 channels, no adaptor needed), weight 1.
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
        logits=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', temperature=1.0,
                    loss_weight=10.0),
        pair=dict(type='PairwiseAffinityKD', student='decode_head.convs',
                  teacher='decode_head.convs', region=2, loss_weight=1.0)),
    probe_size=(128, 128))
