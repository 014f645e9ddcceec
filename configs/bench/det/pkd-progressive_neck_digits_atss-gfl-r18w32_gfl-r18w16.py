# PKD from a progressive pair of teachers: the det row `pkd` (weight 10, 1x1
# adaptors 32 -> 64) reads the ATSS teacher for iterations 0-299 of the
# benchmark's 600, then the GFL teacher (the student's own head family)
# from iteration 300 on; the same adaptors throughout. On the digits both
# teachers score AP 0.68 (GFL 0.682, ATSS 0.685, seed 0).
# tools/benchmark/accuracy.py fills in each teacher's checkpoint (`gfl`: the
# det suite's teacher, `atss`: the det_atss suite's).
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(
        gfl=dict(config='{{ fileDirname }}/../_base_/digits_gfl_r18w32.py',
                 checkpoint='work_dirs/bench/det_teacher.pth'),
        atss=dict(config='{{ fileDirname }}/../_base_/digits_atss_r18w32.py',
                  checkpoint='work_dirs/bench/det_atss_teacher.pth')),
    distill=dict(
        fpn=dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 teacher_model=dict(schedule=[(0, 'atss'), (300, 'gfl')],
                                    by='iter'),
                 adaptor=dict(type='ConvAdaptor'), loss_weight=10.0)),
    probe_size=(128, 128))
