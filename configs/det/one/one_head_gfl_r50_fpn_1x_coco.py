# On-the-fly Native Ensemble (ONE, Lan et al., NeurIPS 2018) for a dense
# detector without a teacher: GFL-R50 on COCO 1x trains two extra copies of
# its head on its FPN levels (three branches; the student's head is branch
# 0, the one kept), a gate and their gated ensemble.
#
# The gate for dense heads: per image, a softmax over the K branches of a
# linear layer on the concatenated global-average-pooled FPN levels (zero
# at the start, so uniform 1/K); the ensemble is a weightless GFL head
# whose every output map (class logits, edge-distribution logits) is the
# gate-weighted sum of the branches' maps, trained with GFL's own loss.
# The ensemble (detached) teaches every branch: class KD (ONE's T = 3,
# weight 1) and LD (tau = 10, weight 0.25). Export keeps branch 0:
#   python tools/extract_student.py CONFIG CKPT OUT.pth
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
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
        ld_branch1=dict(kd['ld'], student_model='one', head='branches.1')))
