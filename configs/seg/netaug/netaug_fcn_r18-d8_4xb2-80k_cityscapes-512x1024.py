# Network Augmentation (NetAug, Cai et al., ICLR 2022) for a small
# segmentor: FCN R18-D8 on Cityscapes 80k trains inside wider FCNs sharing
# its weights (its channels are their first channels; the extra channels
# are extra parameters), each step adding alpha = 1 times the loss of one
# augmented model whose width is drawn per step from 1.5x and 2x (ResNetV1c
# base and stem channels, decode and auxiliary head channels). Batch-norm
# statistics stay separate. Export the student alone:
#   python tools/extract_student.py CONFIG CKPT OUT.pth
_base_ = 'mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py'
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
