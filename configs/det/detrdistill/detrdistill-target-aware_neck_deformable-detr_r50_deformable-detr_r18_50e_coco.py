# DETRDistill's target-aware feature distillation alone (Chang et al.,
# ICCV 2023, as the authors' released code computes it), from
# MMDetection's Deformable DETR R50 (COCO 44.3) into a Deformable DETR
# R18: on every neck level, the teacher's top-100 queries (class score x
# IoU with the ground truth) of every decoder layer weight each location
# by their cosine similarity with the teacher's map; weight 1. The feature
# part of `detrdistill-matching+target-aware+group_*`, for its cost and
# its ablation. See this folder's README.
_base_ = './detrdistill-matching_head_deformable-detr_r50_deformable-detr_r18_50e_coco.py'

model = dict(
    distill=dict(
        _delete_=True,
        target_aware=dict(type='TargetAwareFeatureKD', student='neck',
                          topk=100, teacher_layers='all', loss_weight=1.0)))
