# Network Augmentation (NetAug, Cai et al., ICLR 2022) for a tiny dense
# detector: GFL-R18 on COCO 1x trains inside wider GFLs sharing its weights
# (its channels are their first channels in every layer; the extra
# channels are extra parameters), each step adding alpha = 1 times the
# task loss of one augmented model whose width is drawn per step from
# 1.5x and 2x (ResNet base_channels, FPN in/out channels, head
# in/feat channels). Batch-norm statistics stay separate. The wide models
# start from scratch (the student's ImageNet backbone fills only their
# first channels). Export the student alone:
#   python tools/extract_student.py CONFIG CKPT OUT.pth
_base_ = '../ld/students/gfl_r18_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(netaug=dict(role='augmented',
                              type='mmkd.NetworkAugmentation',
                              width_multipliers=(1.5, 2.0),
                              loss_weight=1.0)),
    distill=dict())
