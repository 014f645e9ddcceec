# KD-DETR (Wang et al., CVPR 2024): consistent distillation points from
# MMDetection's DAB-DETR R50 (COCO 42.3, its released weights) into a
# DAB-DETR R18: 100 general points a step (uniform boxes) and every teacher
# anchor, through both decoders; the released loss (tempered KL at T=10
# weighted by the teacher's confidence, L1 x5 and GIoU x2) on every student
# decoder layer against the teacher's last. See this folder's README.
_base_ = './students/dab-detr_r18_8xb2-50e_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v3.0/'
        'dab_detr/dab-detr_r50_8xb2-50e_coco/'
        'dab-detr_r50_8xb2-50e_coco_20221122_120837-c1035c8c.pth'),
    distill=dict(
        points=dict(type='ConsistentPointsKD', num_general=100,
                    num_specific=None, student_layers='all',
                    temperature=10.0, cls_weight=1.0, l1_weight=5.0,
                    giou_weight=2.0, loss_weight=1.0)))
