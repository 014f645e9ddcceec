# FGFI (Wang et al., CVPR 2019): fine-grained feature imitation of the FPN
# near objects, RetinaNet-R101 teacher -> RetinaNet-R18 student, COCO, 1x.
# The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
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
            type='FeatureImitation', student='neck', teacher='neck',
            mask=dict(type='FGFIMask', thr=0.5),  # ψ = 0.5
            normalize='fgfi',  # Σ I·(A(s) − t)² / (2·N_p)
            loss_weight=0.01,  # λ
            warmup_iters=400)))  # imitation off for the first 400 iters
