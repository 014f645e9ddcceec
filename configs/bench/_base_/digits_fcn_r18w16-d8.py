# The digits benchmark's segmentation student: FCN (one 3x3 conv, 32
# channels) on the first three stages of a ResNetV1c-18 at base width 16,
# the third dilated (output stride 8; the fourth stage is dropped to keep
# a CPU step short), 11 classes (background + 10 digits), 128x128 inputs.
#
# Every conv starts from PyTorch's default initialisation (Kaiming-uniform,
# a=sqrt(5)) instead of mmseg's (Kaiming-normal fan-out, zero-initialised
# residual BNs, conv_seg at std 0.01): on these scenes mmseg's init left
# the FCN predicting the background everywhere after 600-1200 iterations
# (mIoU 8.1), while the same model from PyTorch's init tells the digits
# apart (74 % of digit pixels right on val after 800 iterations at lr 2e-3).
default_scope = 'mmseg'
TORCH_DEFAULT_CONV_INIT = dict(
    type='Kaiming', layer='Conv2d', a=5**0.5, mode='fan_in',
    nonlinearity='leaky_relu', distribution='uniform')

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
        seg_pad_val=255, size=(128, 128)),
    backbone=dict(
        type='ResNetV1c', depth=18, stem_channels=16, base_channels=16,
        num_stages=3, out_indices=(2, ), dilations=(1, 1, 2),
        strides=(1, 2, 1), norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False, style='pytorch', contract_dilation=True,
        init_cfg=TORCH_DEFAULT_CONV_INIT),
    decode_head=dict(
        type='FCNHead', in_channels=64, in_index=0, channels=32,
        num_convs=1, concat_input=False, dropout_ratio=0.1, num_classes=11,
        norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=1.0),
        init_cfg=TORCH_DEFAULT_CONV_INIT),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
