# MMYOLO's RTMDet distillation recipe: RTMDet-s teacher -> RTMDet-tiny
# student, COCO, 300 epochs. CWD (tau = 1, weight 1) on the three outputs
# of the neck (before their norm and activation), the student's through a
# 1x1 conv, both sides through an affine-free BN (batch statistics);
# distillation off for the last 20 epochs, when the base config also
# switches to the light pipeline. The student config is MMDetection's own.
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/rtmdet/rtmdet_s_8xb32-300e_coco/rtmdet_s_8xb32-300e_coco_20220905_161602-387a891e.pth'  # noqa: E501

bn = dict(type='BN', affine=False, track_running_stats=False)
fpn_term = dict(type='ChannelWiseKD', temperature=1.0, loss_weight=1.0,
                adaptor=dict(type='ConvAdaptor', norm_cfg=bn),  # 96 -> 128
                teacher_norm=bn)

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        fpn0=dict(fpn_term, student='neck.out_convs.0.conv',
                  teacher='neck.out_convs.0.conv'),
        fpn1=dict(fpn_term, student='neck.out_convs.1.conv',
                  teacher='neck.out_convs.1.conv'),
        fpn2=dict(fpn_term, student='neck.out_convs.2.conv',
                  teacher='neck.out_convs.2.conv')))

# the base config's hooks (EMA, stage-2 pipeline at epoch 280), and the
# distillation switched off from epoch 280 (0-based) on
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002,
         update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=280,
         switch_pipeline={{_base_.train_pipeline_stage2}}),
    dict(type='mmkd.DistillSwitchHook', stop_epoch=280),
]
