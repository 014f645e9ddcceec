# DETRDistill's matching term and teacher query group with FGD on the neck
# in place of its target-aware feature part (the FGD settings the
# authors' config defines and their training step does not call; the
# three parts as they train them: `detrdistill-matching+target-aware+
# group_*`), from MMDetection's Deformable DETR R50 (COCO 44.3, its
# released weights) into a Deformable DETR R18. Both decoders are 256
# wide, so the teacher's query embeddings join the student's decoder as
# they are. See this folder's README.
_base_ = './detrdistill-matching+fgd_neck+head_deformable-detr_r50_deformable-detr_r18_50e_coco.py'

model = dict(
    distill=dict(group=dict(type='QueryPriorAssignmentKD', loss_weight=1.0)))
