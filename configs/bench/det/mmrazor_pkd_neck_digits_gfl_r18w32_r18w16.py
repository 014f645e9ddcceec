# The peer: MMRazor's own PKD (its PKDLoss, main at 90c7af1) on the digits
# benchmark, the row `mmrazor_pkd` beside ours (`pkd`,
# pkd_neck_digits_gfl_r18w32_r18w16.py), term for term:
# - FpnTeacherDistill (the teacher runs backbone + neck only, frozen, its
#   BN in eval mode) <-> mmkd.Distiller (teacher frozen, in eval mode);
# - ModuleOutputs recorders on `neck`, one loss per FPN level (data_idx
#   0-2) <-> PearsonFeatureKD(student='neck', teacher='neck'), levels
#   summed;
# - ConvModuleConnector 32 -> 64, 1x1, bias, no norm, act_cfg=None (its
#   default is a ReLU) <-> ConvAdaptor (a 1x1 conv with bias);
# - PKDLoss(loss_weight=10) per level, MSE of the per-channel standardised
#   maps / 2 <-> loss_weight=10.0 on the sum of levels. One difference
#   left: PKDLoss divides by the sample std over (N, H, W), ours by the
#   population std, so its loss is ours times 1 - 1/(N*H*W) (0.992 at
#   stride 32: batch 8 of 4x4 maps).
# The student is the digits GFL student, the teacher the digits GFL
# teacher (widths as in ../_base_/digits_gfl_r18w32.py; a test checks it).
# tools/benchmark/accuracy.py puts MMRazor on the path (--peers-path) and
# fills in the teacher checkpoint it trains; the row is skipped when
# MMRazor is not importable. Outside it: PYTHONPATH=<mmrazor folder>.
_base_ = '../_base_/digits_gfl_r18w16.py'
custom_imports = dict(imports=['mmrazor.models'], allow_failed_imports=True)

model = dict(
    _delete_=True,
    _scope_='mmrazor',  # its components are built from its registries
    type='FpnTeacherDistill',
    architecture=dict(_base_.model, _scope_='mmdet'),
    teacher=dict(
        _base_.model, _scope_='mmdet',
        backbone=dict(_base_.model.backbone, base_channels=32),
        neck=dict(_base_.model.neck, in_channels=[64, 128, 256],
                  out_channels=64),
        bbox_head=dict(_base_.model.bbox_head, in_channels=64,
                       feat_channels=64)),
    teacher_ckpt='work_dirs/bench/det_teacher.pth',
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors={
            f's_fpn{i}': dict(type='ConvModuleConnector', in_channel=32,
                              out_channel=64, act_cfg=None)
            for i in range(3)
        },
        distill_losses={
            f'loss_pkd_fpn{i}': dict(type='PKDLoss', loss_weight=10.0)
            for i in range(3)
        },
        loss_forward_mappings={
            f'loss_pkd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i,
                             connector=f's_fpn{i}'),
                preds_T=dict(from_student=False, recorder='fpn',
                             data_idx=i))
            for i in range(3)
        }))
