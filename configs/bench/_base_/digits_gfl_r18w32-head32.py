# A digits detection teacher for terms that run the student's head features
# through the teacher's head (CrossKD): the teacher's backbone and FPN
# (ResNet-18 base 32, FPN 64 channels) with the student's head width (32).
# A GFL head's stacked convs map the FPN's in_channels to feat_channels, so
# every feature after its first conv has the student's shape; the priors
# (strides 8/16/32, one anchor, 10 classes, reg_max 16) are the student's.
_base_ = './digits_gfl_r18w32.py'

model = dict(bbox_head=dict(feat_channels=32))
