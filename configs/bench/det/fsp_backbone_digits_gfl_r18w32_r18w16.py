# FSP (Yim et al., CVPR 2017) on the digits benchmark: the FSP matrices
# G = F1^T F2 / (H*W) between consecutive backbone stages (out_indices
# (1, 2, 3): pairs C3-C4, C4-C5, the larger map average-pooled to the
# smaller), mean squared error per pair, equal weights, through 1x1
# adaptors on the student stages (32/64/128 -> 64/128/256 channels);
# weight 1. tools/benchmark/accuracy.py fills in the teacher checkpoint
# it trains.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_gfl_r18w32.py',
        checkpoint='work_dirs/bench/det_teacher.pth'),
    distill=dict(
        fsp=dict(type='FlowOfSolutionKD', student='backbone',
                 teacher='backbone', loss_weight=1.0)),
    probe_size=(128, 128))
