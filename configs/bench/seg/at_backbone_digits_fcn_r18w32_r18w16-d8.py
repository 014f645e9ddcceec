# AT (Zagoruyko & Komodakis, ICLR 2017) on the digits benchmark: attention
# maps sum_c A_c^2 at the end of each of the three residual stages (the
# paper's placement), L2-normalised per image, squared distance averaged
# over images and positions; no adaptor; the paper's beta = 1000 a stage.
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
        stage1=dict(type='AttentionTransfer', student='backbone.layer1',
                    teacher='backbone.layer1', loss_weight=1000.0),
        stage2=dict(type='AttentionTransfer', student='backbone.layer2',
                    teacher='backbone.layer2', loss_weight=1000.0),
        stage3=dict(type='AttentionTransfer', student='backbone.layer3',
                    teacher='backbone.layer3', loss_weight=1000.0)),
    probe_size=(128, 128))
