# On-the-fly Native Ensemble (ONE, Lan et al., NeurIPS 2018) on the digits
# benchmark: the student (GFL ResNet-18 base 16) trains two extra copies of
# its head on its own FPN levels (three branches, the student's head being
# branch 0, the one kept), a gate (per image, a softmax over the branches
# of a linear layer on the pooled FPN levels, starting uniform) and their
# gated ensemble (every output map of the heads summed with the gate
# weights: class logits and GFL's edge-distribution logits), trained with
# GFL's task loss; the ensemble teaches every branch with class KD
# (ONE's T = 3, weight 1) and LD on the box distributions (LD's tau = 10,
# weight 0.25). The extra branches are dropped at export.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

kd = dict(
    cls=dict(type='HeadClassificationKD', teacher_model='one',
             teacher_head='ensemble', temperature=3, loss_weight=1.0),
    ld=dict(type='LocalizationDistillation', teacher_model='one',
            teacher_head='ensemble', temperature=10, loss_weight=0.25))

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(one=dict(role='auxiliary', type='mmkd.GatedBranchEnsemble',
                           num_branches=3)),
    distill=dict(
        cls=dict(kd['cls'], head='bbox_head'),
        ld=dict(kd['ld'], head='bbox_head'),
        cls_branch0=dict(kd['cls'], student_model='one', head='branches.0'),
        ld_branch0=dict(kd['ld'], student_model='one', head='branches.0'),
        cls_branch1=dict(kd['cls'], student_model='one', head='branches.1'),
        ld_branch1=dict(kd['ld'], student_model='one', head='branches.1')),
    probe_size=(128, 128))
