# DETRDistill's three parts as the authors' released code trains them
# (Chang et al., ICCV 2023; their mmdet 2.x Distiller.forward_train with
# deformdetr_r101_2x_distill_r50_LayerbyLayer_CL_teachergroup.py), on the
# paper's pair: Deformable DETR R101 (COCO 44.8 in the paper) into R50
# (44.1 alone, 46.6 distilled):
# - Hungarian-matching logits distillation of every decoder layer (1/5/2);
# - target-aware feature distillation on every neck level: the teacher's
#   top-100 queries (class score x IoU with the ground truth) of every
#   decoder layer weight each location by their cosine similarity with
#   the teacher's map (weight 1);
# - the teacher query group: the teacher's query embeddings through the
#   student's decoder, trained under the teacher's assignment (both
#   decoders are 256 wide).
# MMDetection releases no R101 Deformable DETR: train
# teachers/deformable-detr_r101_16xb2-50e_coco.py first, or point
# teacher.checkpoint at your own R101 weights.
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmkd::det/detrdistill/teachers/'
        'deformable-detr_r101_16xb2-50e_coco.py',
        checkpoint='work_dirs/deformable-detr_r101_16xb2-50e_coco/'
        'epoch_50.pth'),
    distill=dict(
        match=dict(type='HungarianMatchingKD', cls_weight=1.0,
                   l1_weight=5.0, giou_weight=2.0, score_reweight=True,
                   loss_weight=1.0),
        target_aware=dict(type='TargetAwareFeatureKD', student='neck',
                          topk=100, teacher_layers='all', loss_weight=1.0),
        group=dict(type='QueryPriorAssignmentKD', loss_weight=1.0)))
