# CrossKD (Wang et al., CVPR 2024), reimplemented from the paper: the
# student's head features after its 3rd stacked conv go through the rest of
# the frozen teacher head; those predictions mimic the teacher's.
# FCOS-R101 (caffe) teacher -> FCOS-R50 (caffe), COCO, 1x.
# The student config is MMDetection's own, unchanged.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_r101_caffe_fpn_gn-head_1x_coco/fcos_r101_caffe_fpn_gn-head_1x_coco-0e37b982.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='mmdet::fcos/fcos_r101-caffe_fpn_gn-head-1x_coco.py',
                 checkpoint=teacher_ckpt),
    distill=dict(
        # classification: BCE to the teacher's scores x |score gap|,
        # weight 1; boxes: GIoU of the decoded boxes, weighted by the
        # teacher's max score, weight 1
        cross=dict(type='CrossHeadKD', reuse_index=3, beta=1.0)))
