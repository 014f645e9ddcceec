# Written by tools/recipe.py (mmkd.recipe); see docs/recipe.md.
# teacher: configs/bench/_base_/digits_gfl_r18w32.py: GFL (dense, GFLHead 64
# wide x 2 convs), neck 3 level(s) of 64 channels at strides 8/16/32
# student: configs/bench/_base_/digits_gfl_r18w16.py: GFL (dense, GFLHead 32
# wide x 2 convs), neck 3 level(s) of 32 channels at strides 8/16/32
#
# Terms left out:
#   PKD / CWD / MGD on the neck: a second term on the same neck levels; each
#   alone below feature imitation: +0.217, +0.231, +0.218 AP on digits det
#   (GFL)
#   FGD: digits det `fgd`: +0.041 AP (2/3 seeds up)
#   BCKD: digits det `bckd`: +0.054 AP (2/3 seeds up), below LD's class KD;
#   one class term is enough
#   DKD: digits det `dkd`: +0.073 AP (3/3 seeds up)
#   bounded regression / soft targets (Chen 2017) on the dense head: digits
#   det `bounded_regression`: +0.005 AP (2/3 seeds up); digits det
#   `soft_targets`: +0.032 AP (2/3 seeds up)
#   CrossKD: head widths 64 vs 32 (teacher vs student): the student's head
#   features cannot run through the teacher's head
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
        # one architecture, the same 3 neck levels (strides 8/16/32): plain
        # feature imitation, neck widths 32/32/32 -> 64/64/64 through 1x1
        # adaptors; digits det `feature_imitation`: +0.251 AP (3/3 seeds up)
        fpn=dict(type='FeatureImitation', student='neck', teacher='neck',
                 loss_weight=1.0),
        # both GFL heads lay out the same priors: LD distils the box-edge
        # distributions in the main region (tau 10, weight 0.25, Zheng 2022);
        # digits det `ld`: +0.204 AP (3/3 seeds up) with the two terms below
        ld=dict(type='LocalizationDistillation', region='main', temperature=10,
                loss_weight=0.25),
        # LD in the valuable localization region (negatives near the ATSS
        # threshold, weight 0.25)
        ld_vlr=dict(type='LocalizationDistillation', region='valuable',
                    temperature=10, vlr_low=0.25, loss_weight=0.25),
        # class KD in the main region (tau 2, weight 10), LD's own class term
        cls_kd=dict(type='HeadClassificationKD', region='main', temperature=2,
                    loss_weight=10),
    ),
    probe_size=(128, 128),
)
