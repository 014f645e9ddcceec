# Deep Mutual Learning (Zhang et al., CVPR 2018) for a dense detector: two
# GFL-R50 models (ImageNet backbones, heads from scratch, as MMDetection
# trains GFL) learn together on COCO 1x, each with its own task loss and
# with KD from the other through the head views: LD's main-region terms
# (box-distribution KD, tau = 10, weight 0.25; class KD, tau = 2, weight
# 10), one copy per direction. A term never sends gradients into the
# model it reads as teacher. Both models are in the checkpoints and in the
# one optimizer (over the distiller's parameters); export either with
#   python tools/extract_student.py CONFIG CKPT OUT.pth [--model peer]
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

mutual = dict(
    ld=dict(type='LocalizationDistillation', region='main', temperature=10,
            loss_weight=0.25),
    cls_kd=dict(type='HeadClassificationKD', region='main', temperature=2,
                loss_weight=10))

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(peer=dict(role='peer',
                            config='mmdet::gfl/gfl_r50_fpn_1x_coco.py')),
    distill=dict(
        ld_to_student=dict(mutual['ld'], teacher_model='peer'),
        cls_to_student=dict(mutual['cls_kd'], teacher_model='peer'),
        ld_to_peer=dict(mutual['ld'], student_model='peer',
                        teacher_model='student'),
        cls_to_peer=dict(mutual['cls_kd'], student_model='peer',
                         teacher_model='student')))
