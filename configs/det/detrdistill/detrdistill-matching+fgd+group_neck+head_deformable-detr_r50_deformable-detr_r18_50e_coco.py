# DETRDistill's three parts (matching KD, FGD on the neck as the released
# code's feature part, the teacher query group) from MMDetection's
# Deformable DETR R50 (COCO 44.3, its released weights) into a Deformable
# DETR R18. Both decoders are 256 wide, so the teacher's query embeddings
# join the student's decoder as they are. See this folder's README.
_base_ = './detrdistill-matching+fgd_neck+head_deformable-detr_r50_deformable-detr_r18_50e_coco.py'

model = dict(
    distill=dict(group=dict(type='QueryPriorAssignmentKD', loss_weight=1.0)))
