# FT (Kim et al., NeurIPS 2018): factor transfer at every FPN level,
# RetinaNet-R101 teacher -> RetinaNet-R50 student, COCO, 1x. The student
# config is MMDetection's own, unchanged. Iterations 0-999 train only the
# paraphrasers (reconstruction of the teacher's maps; the student learns
# from its task losses alone), from 1000 on the frozen paraphrasers give
# the teacher's factors and the student's translators match them.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        fpn=dict(
            type='FactorTransfer', student='neck', teacher='neck',
            paraphraser_iters=1000,  # stage 1: the paraphrasers alone
            rate=0.5,  # k: factor channels 0.5 x 256
            reconstruction='l2',  # the paper's ||x - P(x)||^2
            loss_weight=500)))  # beta, the paper's CIFAR value
