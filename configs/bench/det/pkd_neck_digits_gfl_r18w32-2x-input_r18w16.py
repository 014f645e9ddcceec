# PKD from a teacher that sees twice the student's resolution: the det row
# `pkd` (weight 10, 1x1 adaptors 32 -> 64) with the det teacher's model
# (_base_/digits_gfl_r18w32.py) trained on images resized 2x (256x256; the
# harness's det_2x suite) and fed the student's batch rescaled 2x (gt boxes
# alike, `inputs=dict(scale=2.0)`); the student stays at 128x128, so each
# teacher FPN map is twice the student's size and is aligned to it.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(
        gfl2x=dict(config='{{ fileDirname }}/../_base_/digits_gfl_r18w32.py',
                   checkpoint='work_dirs/bench/det_2x_teacher.pth',
                   inputs=dict(scale=2.0))),
    distill=dict(
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 teacher_model='gfl2x', adaptor=dict(type='ConvAdaptor'),
                 loss_weight=10.0)),
    probe_size=(128, 128))
