# Written by tools/recipe.py (mmkd.recipe); see docs/recipe.md.
# teacher: configs/bench/_base_/digits_faster-rcnn_r18w32.py: FasterRCNN
# (two_stage, StandardRoIHead/Shared2FCBBoxHead), neck 3 level(s) of 64
# channels at strides 8/16/32
# student: configs/bench/_base_/digits_faster-rcnn_r18w16.py: FasterRCNN
# (two_stage, StandardRoIHead/Shared2FCBBoxHead), neck 3 level(s) of 32
# channels at strides 8/16/32
#
# Terms left out:
#   PKD / CWD / MGD on the neck: a second term on the same neck levels; each
#   alone below feature imitation: +0.217, +0.231, +0.218 AP on digits det
#   (GFL)
#   FGD: digits det `fgd`: +0.041 AP (2/3 seeds up)
_base_ = '../_base_/digits_faster-rcnn_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_faster-rcnn_r18w32.py',
        checkpoint='work_dirs/bench/det_rcnn_teacher.pth'),
    distill=dict(
        # one architecture, the same 3 neck levels (strides 8/16/32): Chen
        # 2017's hint (gamma 0.5), neck widths 32/32/32 -> 64/64/64 through 1x1
        # adaptors; digits det_rcnn `feature_imitation`: +0.111 AP (3/3 seeds
        # up)
        fpn=dict(type='FeatureImitation', student='neck', teacher='neck',
                 loss_weight=0.5),
        # the RPNs lay out the same anchors: Chen 2017 soft targets, background
        # weight 1.5, mixed with the hard loss by mu 0.5
        rpn_soft=dict(type='BackgroundWeightedSoftTargets', head='rpn_head',
                      mu=0.5, background_weight=1.5),
        # Chen 2017 teacher-bounded regression on the RPN (m 0.2, nu 0.5)
        rpn_box=dict(type='TeacherBoundedRegression', head='rpn_head',
                     margin=0.2, loss_weight=0.5),
        # the teacher's R-CNN head scores the student's sampled RoIs (same
        # classes and box coder): Chen 2017 soft targets there
        rcnn_soft=dict(type='RoIBackgroundWeightedSoftTargets', mu=0.5,
                       background_weight=1.5),
        # Chen 2017 teacher-bounded regression on the positive RoIs; the whole
        # Chen 2017 recipe: digits det_rcnn `chen2017`: +0.157 AP (3/3 seeds
        # up), against +0.026 AP without the hint
        rcnn_box=dict(type='RoITeacherBoundedRegression', margin=0.2,
                      loss_weight=0.5),
    ),
    probe_size=(128, 128),
)
