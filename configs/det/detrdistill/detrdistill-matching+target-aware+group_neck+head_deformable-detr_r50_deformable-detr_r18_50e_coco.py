# DETRDistill's three parts as the authors' released code trains them
# (Chang et al., ICCV 2023; their mmdet 2.x Distiller.forward_train with
# deformdetr_r101_2x_distill_r50_LayerbyLayer_CL_teachergroup.py), from
# MMDetection's Deformable DETR R50 (COCO 44.3, its released weights) into
# a Deformable DETR R18:
# - Hungarian-matching logits distillation of every decoder layer (1/5/2);
# - target-aware feature distillation on every neck level: the teacher's
#   top-100 queries (class score x IoU with the ground truth) of every
#   decoder layer weight each location by their cosine similarity with
#   the teacher's map (weight 1; both necks 256 wide, so the 1x1 adaptor
#   starts as a learned map of equal width);
# - the teacher query group: the teacher's query embeddings through the
#   student's decoder, trained under the teacher's assignment.
# See this folder's README.
_base_ = './detrdistill-matching_head_deformable-detr_r50_deformable-detr_r18_50e_coco.py'

model = dict(
    distill=dict(
        target_aware=dict(type='TargetAwareFeatureKD', student='neck',
                          topk=100, teacher_layers='all', loss_weight=1.0),
        group=dict(type='QueryPriorAssignmentKD', loss_weight=1.0)))
