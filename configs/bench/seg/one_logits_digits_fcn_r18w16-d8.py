# On-the-fly Native Ensemble (ONE, Lan et al., NeurIPS 2018) on the digits
# benchmark's segmentation suite: two extra copies of the student's FCN
# decode head on its backbone map (three branches, the student's head
# being branch 0, the one kept), a gate (per image, a softmax over the
# branches of a linear layer on the pooled map) and the gated sum of the
# three logit maps, trained with the cross-entropy; the ensemble teaches
# every branch with the pixel-wise KL (ONE's T = 3, weight 1). The extra
# branches are dropped at export.
_base_ = '../_base_/digits_fcn_r18w16-d8.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

kd = dict(type='PixelwiseKD', teacher_model='one', teacher='ensemble',
          temperature=3.0, loss_weight=1.0)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(one=dict(role='auxiliary', type='mmkd.GatedBranchEnsemble',
                           num_branches=3)),
    distill=dict(
        kd=dict(kd, student='decode_head.conv_seg'),
        kd_branch0=dict(kd, student_model='one',
                        student='branches.0.conv_seg'),
        kd_branch1=dict(kd, student_model='one',
                        student='branches.1.conv_seg')),
    probe_size=(128, 128))
