# RKD (Park et al., CVPR 2019) on the digits benchmark: the batch's
# ground-truth digits RoIAlign-pooled (7x7) from the FPN level mmdet's
# RoI extractor rule gives them (the digits are small: mostly stride 8),
# flattened (32 * 49 student, 64 * 49 teacher dimensions; no adaptor);
# distance (25) and angle (50) Huber losses over the batch's instances,
# the paper's weights. tools/benchmark/accuracy.py fills in the teacher
# checkpoint it trains.
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
        rkd=dict(type='RelationalKD', student='neck', teacher='neck',
                 distance_weight=25.0, angle_weight=50.0)),
    probe_size=(128, 128))
