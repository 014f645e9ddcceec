import torch
from mmengine.model import ImgDataPreprocessor

from mmkd.distillers.teacher_inputs import TeacherInputConverter

PYTORCH_STYLE = dict(mean=[123.675, 116.28, 103.53],
                     std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
CAFFE_STYLE = dict(mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0],
                   bgr_to_rgb=False)


def _preprocess(pre, images):
    return pre(dict(inputs=[img for img in images]), False)['inputs']


def _assert_converts(student, teacher, atol=1e-3):
    """The converter maps the student's inputs onto the teacher's own."""
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    converter = TeacherInputConverter.between(student, teacher)
    assert converter is not None
    torch.testing.assert_close(converter(_preprocess(student, images)),
                               _preprocess(teacher, images),
                               atol=atol, rtol=1e-5)
    return converter


def test_converts_pytorch_style_inputs_to_caffe_style():
    _assert_converts(ImgDataPreprocessor(**PYTORCH_STYLE),
                     ImgDataPreprocessor(**CAFFE_STYLE))


def test_identical_preprocessors_need_no_converter():
    assert TeacherInputConverter.between(
        ImgDataPreprocessor(**PYTORCH_STYLE),
        ImgDataPreprocessor(**PYTORCH_STYLE)) is None


def test_unnormalised_student_to_normalised_teacher():
    _assert_converts(ImgDataPreprocessor(),
                     ImgDataPreprocessor(**PYTORCH_STYLE), atol=1e-4)


def test_mmseg_preprocessors_are_converted(seg_scope):
    """mmseg's SegDataPreProcessor names its channel flip differently."""
    from mmseg.models import SegDataPreProcessor
    student = SegDataPreProcessor(**PYTORCH_STYLE)
    converter = _assert_converts(student,
                                 SegDataPreProcessor(**CAFFE_STYLE))
    assert converter.flip
    assert TeacherInputConverter.between(
        SegDataPreProcessor(**PYTORCH_STYLE), student) is None


def test_mmdet_student_to_caffe_style_mmdet_teacher(det_scope):
    from mmdet.models import DetDataPreprocessor
    _assert_converts(DetDataPreprocessor(**PYTORCH_STYLE),
                     DetDataPreprocessor(**CAFFE_STYLE))
