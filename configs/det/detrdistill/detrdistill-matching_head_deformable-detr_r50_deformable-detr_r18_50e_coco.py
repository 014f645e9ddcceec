# DETRDistill's Hungarian-matching logits distillation (Chang et al., ICCV
# 2023) from MMDetection's Deformable DETR R50 (COCO 44.3, its released
# weights) into a Deformable DETR R18, every decoder layer to its teacher
# layer, with the authors' matching and loss weights (1 / 5 / 2). See this
# folder's README for what of DETRDistill is and is not here.
_base_ = './students/deformable-detr_r18_16xb2-50e_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v3.0/'
        'deformable_detr/deformable-detr_r50_16xb2-50e_coco/'
        'deformable-detr_r50_16xb2-50e_coco_20221029_210934-6bc7d21b.pth'),
    distill=dict(
        match=dict(type='HungarianMatchingKD', cls_weight=1.0,
                   l1_weight=5.0, giou_weight=2.0, score_reweight=True,
                   loss_weight=1.0)))
