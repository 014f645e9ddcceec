# Network Augmentation (NetAug, Cai et al., ICLR 2022) on the digits
# benchmark: the student (GFL ResNet-18 base 16) trains inside wider GFLs
# that share its weights (its channels are their first channels; the extra
# channels are extra parameters): each step adds alpha = 1 times the task
# loss of one augmented model, its width drawn per step from 1.5x and 2x
# (ResNet base_channels, FPN and head widths). Batch-norm statistics stay
# separate. No teacher; only the student is exported.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teachers=dict(netaug=dict(role='augmented',
                              type='mmkd.NetworkAugmentation',
                              width_multipliers=(1.5, 2.0),
                              loss_weight=1.0)),
    distill=dict(),
    probe_size=(128, 128))
