"""Head views: outputs and assignment aligned prior by prior, per family."""
import pytest
import torch
from mmengine.registry import MODELS
from tiny_heads import (FAMILIES, det_batch, tiny_fcos, tiny_gfl,
                        tiny_retina)

from mmkd.heads import check_alignment, view_for
from mmkd.heads.views import flatten_levels
from mmkd.recorders import ModelRecorder, ReadSpec

STUDENT = ReadSpec('bbox_head', 'calls', ('forward', 'get_targets'))
TEACHER = ReadSpec('bbox_head', 'calls', ('forward', ))


@pytest.mark.parametrize('priors_per_location', [1, 3])
def test_flatten_levels_is_mmdets_prior_order(priors_per_location):
    # mmdet's losses flatten each level as permute(0, 2, 3, 1) then
    # reshape(-1, K): level, image, row, column, anchor; our rows are
    # image-major (image, level, row, column, anchor)
    k = 5
    maps = [torch.randn(2, priors_per_location * k, h, w)
            for h, w in ((4, 6), (2, 3), (1, 1))]
    per_image = [torch.cat([m[i:i + 1].permute(0, 2, 3, 1).reshape(-1, k)
                            for m in maps]) for i in range(2)]
    assert torch.equal(flatten_levels(maps, k), torch.cat(per_image))


def _build(cfg):
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _head(model):
    return model.bbox_head


def record_step(student, teacher):
    """One student loss and one teacher tensor forward, recorded; the
    records and the images."""
    rec_s = ModelRecorder(student, [STUDENT], 'student')
    rec_t = ModelRecorder(teacher, [TEACHER], 'teacher')
    rec_s.active = rec_t.active = True
    inputs, samples = det_batch()
    student.train()
    teacher.eval()
    student.loss(inputs, samples)
    with torch.no_grad():
        teacher(inputs, samples, mode='tensor')
    s_calls, t_calls = rec_s.get(STUDENT), rec_t.get(TEACHER)
    rec_s.remove()
    rec_t.remove()
    return s_calls, t_calls, inputs


@pytest.fixture(params=sorted(FAMILIES))
def family(request, det_scope):
    return request.param


def test_outputs_and_targets_line_up_prior_by_prior(family):
    make = FAMILIES[family]
    student, teacher = _build(make()), _build(make(32, 16))
    s_calls, t_calls, inputs = record_step(student, teacher)
    view = check_alignment(_head(student), _head(teacher), 'x')
    preds = view.collect(s_calls, t_calls)
    head = _head(student)
    cls_maps, reg_maps = s_calls.last('forward').result[:2]
    t_cls_maps = t_calls.last('forward').result[0]
    num_a, num_c = head.num_base_priors, head.cls_out_channels
    sizes = [m.shape[-2:].numel() * num_a for m in cls_maps]
    per_image = sum(sizes)
    assert preds.cls_student.shape == (2 * per_image, num_c)
    assert preds.level_sizes == sizes
    # image 1, level 1, row 1, column 2, last anchor
    level, y, x, a = 1, 1, 2, num_a - 1
    width = cls_maps[level].shape[-1]
    row = per_image + sizes[0] + (y * width + x) * num_a + a
    assert torch.equal(preds.cls_student[row],
                       cls_maps[level][1, a * num_c:(a + 1) * num_c, y, x])
    assert torch.equal(preds.cls_teacher[row],
                       t_cls_maps[level][1, a * num_c:(a + 1) * num_c, y, x])
    channels = reg_maps[level].shape[1] // num_a
    assert torch.equal(preds.reg_student[row],
                       reg_maps[level][1, a * channels:(a + 1) * channels,
                                       y, x])
    stride = head.prior_generator.strides[level][0]
    assert preds.strides[row] == stride
    priors = head.prior_generator.grid_priors(
        [m.shape[-2:] for m in cls_maps], device=preds.priors.device)
    assert torch.equal(preds.priors[row],
                       priors[level][(y * width + x) * num_a + a])
    # the student's positives are where its targets say, with its labels
    pos = preds.pos
    assert pos.any() and not pos.all()
    assert set(preds.labels[pos].tolist()) <= {0, 1, 2}
    assert (preds.label_weights[pos] > 0).all()


def test_targets_decode_to_the_assigned_gt_boxes(family):
    make = FAMILIES[family]
    student, teacher = _build(make()), _build(make(32, 16))
    s_calls, t_calls, inputs = record_step(student, teacher)
    preds = view_for(_head(student), 'x').collect(s_calls, t_calls)
    _, samples = det_batch()
    per_image = preds.priors.shape[0] // 2
    boxes = preds.target_boxes()
    for image, sample in enumerate(samples):
        rows = slice(image * per_image, (image + 1) * per_image)
        got = boxes[rows][preds.pos[rows]]
        gts = sample.gt_instances.bboxes
        # every positive's target is one of its image's gt boxes
        dist = (got[:, None] - gts[None]).abs().amax(-1).amin(1)
        assert dist.max() < 1e-3
    # offsets of a perfect prediction are the targets, in the head's
    # encoding: decoding them gives the gt boxes back
    if family != 'gfl':
        perfect = preds.target_offsets()
        decoded = preds.view.decode(preds, perfect, preds.student_head)
        assert torch.allclose(decoded[preds.pos], boxes[preds.pos],
                              atol=1e-3)


def test_gfl_offsets_are_the_integral_and_targets_the_dfl_targets(
        det_scope):
    student, teacher = _build(tiny_gfl()), _build(tiny_gfl(32, 16))
    s_calls, t_calls, inputs = record_step(student, teacher)
    preds = view_for(student.bbox_head, 'x').collect(s_calls, t_calls)
    head = student.bbox_head
    assert preds.reg_student.shape[1] == 4 * (head.reg_max + 1)
    bins = preds.reg_student.reshape(-1, head.reg_max + 1).softmax(1)
    expected = (bins * torch.arange(head.reg_max + 1.)).sum(1)
    assert torch.allclose(preds.offsets(), expected.reshape(-1, 4),
                          atol=1e-5)
    target = preds.target_offsets()[preds.pos]
    assert (target >= 0).all() and (target < head.reg_max).all()
    # the targets are the distances from each centre to its gt box
    centres = (preds.priors[:, :2] + preds.priors[:, 2:]) / 2
    distances = preds.target_offsets() * preds.strides[:, None]
    top_left = centres - distances[:, :2]
    bottom_right = centres + distances[:, 2:]
    boxes = torch.cat([top_left, bottom_right], 1)
    assert torch.allclose(boxes[preds.pos],
                          preds.target_boxes()[preds.pos], atol=1e-3)


def test_fcos_teacher_distances_are_put_on_the_training_scale(det_scope):
    student, teacher = _build(tiny_fcos()), _build(tiny_fcos(32, 16))
    s_calls, t_calls, inputs = record_step(student, teacher)
    preds = view_for(student.bbox_head, 'x').collect(s_calls, t_calls)
    # the eval-mode teacher multiplies by the stride; in training it
    # does not: the view gives the training-mode distances
    with torch.no_grad():
        feats = teacher.extract_feat(inputs)
        teacher.bbox_head.train()  # no norm layers in the tiny FCOS head
        train_maps = teacher.bbox_head(feats)[1]
    rows = torch.cat([m.permute(0, 2, 3, 1).reshape(2, -1, 4)
                      for m in train_maps], 1).reshape(-1, 4)
    assert torch.allclose(preds.reg_teacher, rows, atol=1e-5)
    eval_rows = rows * preds.strides[:, None]
    assert not torch.allclose(preds.reg_teacher, eval_rows)


def test_unsupported_head_lists_the_supported_ones(det_scope):
    paa = MODELS.build(dict(
        type='PAAHead', num_classes=3, in_channels=8, feat_channels=8,
        stacked_convs=1, norm_cfg=None,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0],
                              octave_base_scale=8, scales_per_octave=1,
                              strides=[8, 16, 32])))
    with pytest.raises(TypeError) as err:
        view_for(paa, 'the student head')
    message = str(err.value)
    assert 'PAAHead' in message
    for name in ('AnchorHead', 'RetinaHead', 'RPNHead', 'ATSSHead',
                 'GFLHead', 'FCOSHead'):
        assert name in message


@pytest.mark.parametrize('teacher_cfg, differs', [
    (lambda: tiny_gfl(32, 16, reg_max=16), 'reg_max: student 8, teacher 16'),
    (lambda: tiny_retina(32, 16), 'family'),
])
def test_misaligned_teacher_says_what_differs(det_scope, teacher_cfg,
                                              differs):
    student, teacher = _build(tiny_gfl()), _build(teacher_cfg())
    with pytest.raises(ValueError, match=differs):
        check_alignment(student.bbox_head, teacher.bbox_head, 'ld')


def test_anchor_layout_and_class_count_are_checked(det_scope):
    student = _build(tiny_retina())
    cfg = tiny_retina(32, 16)
    cfg['bbox_head']['anchor_generator']['ratios'] = [0.5, 1.0, 2.0]
    cfg['bbox_head']['num_classes'] = 4
    cfg['bbox_head']['anchor_generator']['strides'] = [4, 8, 16]
    with pytest.raises(ValueError) as err:
        check_alignment(student.bbox_head, _build(cfg).bbox_head, 'soft')
    message = str(err.value)
    assert 'priors_per_location: student 1, teacher 3' in message
    assert 'class_channels: student 3, teacher 4' in message
    assert 'strides' in message and "Term 'soft'" in message
