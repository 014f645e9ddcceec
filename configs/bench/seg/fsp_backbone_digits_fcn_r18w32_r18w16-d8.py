# FSP (Yim et al., CVPR 2017) on the digits benchmark: the FSP matrices
# G = F1^T F2 / (H*W) between consecutive stages of the ResNetV1c
# (layer1-layer2 at 32x32 -> 16x16, the larger average-pooled, and
# layer2-layer3 at 16x16, dilated), read by their paths because the
# backbone outputs only its last stage; mean squared error per pair,
# equal weights, through 1x1 adaptors (16/32/64 -> 32/64/128 channels);
# weight 1. tools/benchmark/accuracy.py fills in the teacher checkpoint
# it trains.
_base_ = '../_base_/digits_fcn_r18w16-d8.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

stages = ['backbone.layer1', 'backbone.layer2', 'backbone.layer3']
model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_fcn_r18w32-d8.py',
        checkpoint='work_dirs/bench/seg_teacher.pth'),
    distill=dict(
        fsp=dict(type='FlowOfSolutionKD', student=stages, teacher=stages,
                 loss_weight=1.0)),
    probe_size=(128, 128))
