"""tools/feature_maps.py: the teacher's and the students' attention maps of
a module on one image, and their agreement with the teacher's."""
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from conftest import REPO, save_teacher, tiny_pspnet, tiny_retinanet

sys.path.insert(0, osp.join(REPO, 'tools'))
import feature_maps as tool  # noqa: E402

pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def _distill_config(tmp_path, student: dict, teacher: dict, scope: str,
                    read: str, mask: dict = None) -> str:
    teacher_ckpt = save_teacher(teacher, str(tmp_path / 'teacher.pth'),
                                scope)
    path = tmp_path / 'distill.py'
    path.write_text(
        f'default_scope = {scope!r}\n'
        'model = dict(type="mmkd.Distiller",\n'
        f'    student={student!r},\n'
        f'    teacher=dict(config=dict(default_scope={scope!r}, '
        f'model={teacher!r}), checkpoint={teacher_ckpt!r}),\n'
        f'    distill=dict(fpn=dict(type="FeatureImitation", '
        f'student={read!r}, teacher={read!r}, mask={mask!r})))\n')
    return str(path)


def _training_checkpoint(tmp_path, model_cfg: dict, scope: str, seed: int,
                         name: str) -> str:
    """A checkpoint laid out as a distiller's: the student's weights
    under ``student.`` beside the terms' own (an adaptor)."""
    from mmengine.registry import MODELS, DefaultScope
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    state = {f'student.{k}': v for k, v in model.state_dict().items()}
    state['distill_terms.fpn.adaptors.0.weight'] = torch.zeros(1)
    path = str(tmp_path / f'{name}.pth')
    torch.save(dict(state_dict=state, meta={}), path)
    return path


def _image(tmp_path) -> str:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 80, 3), dtype=np.uint8)
    path = str(tmp_path / 'image.png')
    cv2.imwrite(path, image)
    return path


def test_det_maps_per_fpn_level_and_their_agreement(tmp_path, det_scope):
    # the distilled student is the teacher's architecture with the teacher's
    # weights (seed 0, as save_teacher): it agrees with it exactly
    cfg = tiny_retinanet(8, 16)
    config = _distill_config(tmp_path, cfg, cfg, 'mmdet', 'neck')
    same = str(tmp_path / 'teacher.pth')
    other = _training_checkpoint(tmp_path, cfg, 'mmdet', 1, 'alone')
    out = str(tmp_path / 'maps.png')
    scores = tool.feature_maps(config, same, _image(tmp_path), out,
                               baseline=other, size=(64, 64))
    assert set(scores) == {'distilled', 'student alone'}
    assert len(scores['distilled']) == 3  # the FPN's three levels
    assert scores['distilled'] == pytest.approx([1.0] * 3, abs=1e-5)
    assert all(-1 <= s < 0.9999 for s in scores['student alone'])
    picture = cv2.imread(out)
    # three rows (teacher, distilled, alone), five columns (image, levels,
    # predictions)
    assert picture is not None
    assert picture.shape[1] / picture.shape[0] == pytest.approx(
        5 * 2.2 / (3 * 2.3), rel=0.05)


def _annotations(tmp_path, boxes) -> str:
    """A COCO file holding the test image (96 x 80) and its boxes."""
    import json
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(dict(
        images=[dict(id=7, file_name='other.png', height=96, width=80),
                dict(id=3, file_name='image.png', height=96, width=80)],
        categories=[dict(id=5, name='b'), dict(id=2, name='a')],
        annotations=[dict(id=i, image_id=3, bbox=b, category_id=5,
                          iscrowd=0) for i, b in enumerate(boxes)] +
        [dict(id=99, image_id=7, bbox=[0, 0, 80, 96], category_id=2,
              iscrowd=0)])))
    return str(path)


def test_the_image_ground_truth_is_read_by_file_name_and_scaled(tmp_path):
    boxes, labels = tool.image_ground_truth(
        _annotations(tmp_path, [[8, 12, 40, 48]]),
        str(tmp_path / 'image.png'), (0.5, 2.0))
    # x1, y1, x2, y2 scaled by (sx, sy); category 5 is the second by id
    assert boxes.tolist() == [[4.0, 24.0, 24.0, 120.0]]
    assert labels.tolist() == [1]
    with pytest.raises(ValueError, match="no image named 'none.png'"):
        tool.image_ground_truth(_annotations(tmp_path, []),
                                str(tmp_path / 'none.png'), (1, 1))


def test_annotations_add_a_row_of_each_weighing_terms_masks(
        tmp_path, det_scope):
    cfg = tiny_retinanet(8, 16)
    config = _distill_config(tmp_path, cfg, cfg, 'mmdet', 'neck',
                             mask=dict(type='GtBoxMask'))
    plain, masked = str(tmp_path / 'plain.png'), str(tmp_path / 'mask.png')
    image = _image(tmp_path)
    tool.feature_maps(config, str(tmp_path / 'teacher.pth'), image, plain,
                      size=(64, 64))
    tool.feature_maps(config, str(tmp_path / 'teacher.pth'), image, masked,
                      size=(64, 64),
                      annotations=_annotations(tmp_path, [[8, 12, 40, 48]]))
    rows = [cv2.imread(p).shape[0] for p in (plain, masked)]
    # teacher and distilled; then the term 'fpn' and its box mask
    assert rows[1] / rows[0] == pytest.approx(3 / 2, rel=0.05)


def test_annotations_for_a_segmentor_are_refused(tmp_path, seg_scope):
    student = tiny_pspnet(8, 16)
    config = _distill_config(tmp_path, student, student, 'mmseg',
                             'decode_head.bottleneck')
    with pytest.raises(ValueError, match='leave it out for a segmentor'):
        tool.feature_maps(config, str(tmp_path / 'teacher.pth'),
                          _image(tmp_path), str(tmp_path / 'x.png'),
                          size=(64, 64),
                          annotations=_annotations(tmp_path, []))
    assert not osp.exists(tmp_path / 'x.png')


def test_predictions_are_boxes_or_a_label_map(tmp_path, det_scope):
    from mmengine.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(tiny_retinanet(8, 16)))
    image = tool.read_image(_image(tmp_path), (64, 64))
    boxes = tool.predictions(model, image, score_thr=0.0)
    assert boxes.ndim == 2 and boxes.shape[1] == 6
    assert (boxes[:, 4] >= 0).all()
    assert len(tool.predictions(model, image, score_thr=1.01)) == 0


def test_a_segmentors_prediction_is_its_label_map(tmp_path, seg_scope):
    from mmengine.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(tiny_pspnet(8, 16)))
    image = tool.read_image(_image(tmp_path), (64, 48))
    labels = tool.predictions(model, image, score_thr=0.3)
    assert tuple(labels.shape) == (64, 48)
    assert labels.dtype == torch.int64 and int(labels.min()) >= 0


def test_seg_student_of_another_width_reads_the_module_the_term_reads(
        tmp_path, seg_scope):
    student, teacher = tiny_pspnet(8, 16), tiny_pspnet(16, 32)
    config = _distill_config(tmp_path, student, teacher, 'mmseg',
                             'decode_head.bottleneck')
    ckpt = _training_checkpoint(tmp_path, student, 'mmseg', 2, 'kd')
    out = str(tmp_path / 'seg.png')
    scores = tool.feature_maps(config, ckpt, _image(tmp_path), out,
                               size=(64, 64))
    assert list(scores) == ['distilled'] and len(scores['distilled']) == 1
    assert -1 <= scores['distilled'][0] <= 1
    assert osp.getsize(out) > 0


def test_agreement_resizes_the_student_map():
    teacher = torch.zeros(4, 4)
    teacher[:2, :2] = 1
    student = torch.zeros(2, 2)
    student[0, 0] = 1
    assert tool.agreement(student, teacher) == pytest.approx(
        tool.agreement(torch.nn.functional.interpolate(
            student[None, None], size=(4, 4), mode='bilinear',
            align_corners=False)[0, 0], teacher))
    assert tool.agreement(teacher, teacher) == pytest.approx(1.0)


def test_a_wrong_module_names_the_nearest_paths(tmp_path, det_scope):
    cfg = tiny_retinanet(8, 16)
    config = _distill_config(tmp_path, cfg, cfg, 'mmdet', 'neck')
    with pytest.raises(KeyError, match=r"no module 'nek'.*'neck'"):
        tool.feature_maps(config, str(tmp_path / 'teacher.pth'),
                          _image(tmp_path), str(tmp_path / 'x.png'),
                          module='nek', size=(64, 64))
    assert not osp.exists(tmp_path / 'x.png')


def test_a_missing_image_says_so(tmp_path, det_scope):
    cfg = tiny_retinanet(8, 16)
    config = _distill_config(tmp_path, cfg, cfg, 'mmdet', 'neck')
    with pytest.raises(FileNotFoundError, match='Cannot read the image'):
        tool.feature_maps(config, str(tmp_path / 'teacher.pth'),
                          str(tmp_path / 'none.png'), str(tmp_path / 'x.png'))
