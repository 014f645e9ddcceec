"""RKD (Park et al., CVPR 2019) against distances and angles worked out by
hand, and against the authors' difference-tensor formulation."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from conftest import save_teacher, tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import RelationalKD, rkd_angle_loss, rkd_distance_loss
from mmkd.losses.relational import (class_region_embeddings, roi_embeddings,
                                    roi_levels)

RIGHT = torch.tensor([[0., 0.], [1., 0.], [0., 1.]])  # right angle at 0
LINE = torch.tensor([[0., 0.], [1., 0.], [2., 0.]])  # collinear


def _reference(student, teacher):
    """lenscloth/RKD's formulation, written from its formula: K×K×D
    differences, means over all K² pairs and K³ triplets."""
    def dist(e):
        d = torch.cdist(e, e)
        return d / d[d > 0].mean()

    def angles(e):
        diff = F.normalize(e[None] - e[:, None], p=2, dim=2)
        return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)

    return (F.smooth_l1_loss(dist(student), dist(teacher)),
            F.smooth_l1_loss(angles(student), angles(teacher)))


def test_distance_loss_by_hand():
    """Teacher RIGHT: distances 1, 1, √2, mean (2 + √2)/3. Student LINE:
    1, 2, 1, mean 4/3, so 3/4, 3/2, 3/4. Every difference is below 1,
    huber = x²/2; each pair counts twice (i, j and j, i) over K² = 9."""
    m = (2 + math.sqrt(2)) / 3
    diffs = [0.75 - 1 / m, 1.5 - 1 / m, 0.75 - math.sqrt(2) / m]
    expected = sum(x * x for x in diffs) / 9
    assert rkd_distance_loss(LINE, RIGHT).item() == pytest.approx(expected)
    # distances are normalised by their mean: scale does not matter
    assert rkd_distance_loss(RIGHT * 5, RIGHT).item() == \
        pytest.approx(0, abs=1e-6)
    # two items: both distances normalise to 1, always 0
    assert rkd_distance_loss(LINE[:2] * 3, RIGHT[1:]).item() == 0


def test_angle_loss_by_hand():
    """Cosines at each vertex, teacher RIGHT: 0 at item 0, 1/√2 at items
    1 and 2; student LINE: 1, −1, 1. Each vertex has two ordered
    (i, k), i ≠ k, triplets; i = k gives 1 on both sides. Huber: 1 at
    vertex 0 gives 1/2, −1 − 1/√2 gives 1/2 + 1/√2, 1 − 1/√2 gives
    (1 − 1/√2)²/2; over K³ = 27."""
    r = 1 / math.sqrt(2)
    expected = 2 * (0.5 + (0.5 + r) + (1 - r) ** 2 / 2) / 27
    assert rkd_angle_loss(LINE, RIGHT).item() == pytest.approx(expected)
    assert rkd_angle_loss(RIGHT * 3 + 7, RIGHT).item() == \
        pytest.approx(0, abs=1e-6)


def test_against_the_authors_formulation_on_random_embeddings():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 5), torch.randn(6, 9) * 4 + 2
    distance, angle = _reference(student, teacher)
    assert rkd_distance_loss(student, teacher).item() == \
        pytest.approx(distance.item(), rel=1e-5)
    assert rkd_angle_loss(student, teacher).item() == \
        pytest.approx(angle.item(), rel=1e-5)


def test_valid_mask_is_the_set():
    torch.manual_seed(1)
    student, teacher = torch.randn(5, 3), torch.randn(5, 4)
    valid = torch.tensor([True, False, True, True, False])
    for loss in (rkd_distance_loss, rkd_angle_loss):
        assert loss(student, teacher, valid).item() == pytest.approx(
            loss(student[valid], teacher[valid]).item(), rel=1e-5)


@pytest.mark.parametrize('count', [0, 1, 2])
def test_too_few_items_give_zero_still_connected(count):
    student = torch.randn(3, 4, requires_grad=True)
    valid = torch.arange(3) < count
    loss = rkd_angle_loss(student, torch.randn(3, 2), valid) + \
        rkd_distance_loss(student, torch.randn(3, 2), valid)
    assert loss.item() == pytest.approx(0, abs=1e-6)
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()


def test_gradient_reaches_the_student_only():
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 6, requires_grad=True)
    (rkd_distance_loss(student, teacher) +
     rkd_angle_loss(student, teacher)).backward()
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_roi_levels_follow_mmdet_rule():
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    extractor = SingleRoIExtractor(
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=4, featmap_strides=[4, 8, 16, 32])
    torch.manual_seed(0)
    xy = torch.rand(50, 2) * 100
    wh = torch.rand(50, 2) * 700 + 1
    rois = torch.cat([torch.zeros(50, 1), xy, xy + wh], 1)
    ours = roi_levels(rois, torch.tensor([2., 3., 4., 5.]))
    assert torch.equal(ours, extractor.map_roi_levels(rois, 4))
    # RetinaNet's P3-P5: the nearest stride; scale 50 -> stride 8,
    # 300 -> 16, 1000 -> 32 (clamped)
    boxes = torch.tensor([[0, 0, 0, 50, 50], [0, 0, 0, 300, 300],
                          [0, 0, 0, 1000, 1000]], dtype=torch.float32)
    assert roi_levels(boxes, torch.tensor([3., 4., 5.])).tolist() == \
        [0, 1, 2]


def test_roi_embeddings_pool_the_level_of_each_box():
    """Level l constant l + 1: each embedding is its level's constant."""
    levels = [torch.full((1, 2, 16 // 2**i, 16 // 2**i), float(i + 1))
              for i in range(3)]  # strides 8, 16, 32 on a 128² input
    rois = torch.tensor([[0, 0, 0, 50, 50], [0, 0, 0, 120, 120.]])
    # scales 50 and 120: floor(log2(scale / 56)) + 2 = 1 and 3 (stride 8)
    emb = roi_embeddings(levels, rois, (128, 128), roi_size=2)
    assert emb.shape == (2, 2 * 4)
    assert torch.allclose(emb, torch.ones(2, 8))
    big = torch.tensor([[0, 0, 0, 127, 127.], [0, 0, 0, 8, 8.]])
    assert roi_embeddings(levels, big, (128, 128), roi_size=2,
                          finest_scale=14.)[:, 0].tolist() == [3., 1.]
    fixed = roi_embeddings(levels, rois, (128, 128), roi_size=2, level=1)
    assert torch.allclose(fixed, torch.full((2, 8), 2.))


def test_class_region_embeddings_by_hand():
    feature = torch.tensor([[1., 2.], [3., 4.]])[None, None]
    labels = torch.tensor([[[0, 0], [1, 255]]])
    emb, present = class_region_embeddings(feature, labels, 3)
    assert present.tolist() == [True, True, False]
    assert emb[:2, 0].tolist() == [1.5, 3.]
    # labels at 4×4 resized (nearest) to the 2×2 map
    emb, _ = class_region_embeddings(
        feature, labels.repeat_interleave(2, 1).repeat_interleave(2, 2), 3)
    assert emb[:2, 0].tolist() == [1.5, 3.]


def _det_samples(boxes_per_image, size=(64, 64)):
    samples = []
    for boxes in boxes_per_image:
        sample = DetDataSample(metainfo=dict(batch_input_shape=size,
                                             img_shape=size, pad_shape=size))
        boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        sample.gt_instances = InstanceData(
            bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long))
        samples.append(sample)
    return samples


def test_term_on_gt_instances_of_the_batch():
    """Three instances over two images, one level of stride 1: each
    instance's 1×1 RoI embedding is the map's value there, so the set is
    RIGHT for the teacher and LINE for the student."""
    samples = _det_samples([[[0, 0, 1, 1], [1, 0, 2, 1]], [[0, 1, 1, 2]]],
                           size=(4, 4))
    teacher = torch.zeros(2, 2, 4, 4)
    student = torch.zeros(2, 2, 4, 4, requires_grad=True)
    t_values = [RIGHT[0], RIGHT[1], RIGHT[2]]
    s_values = LINE.clone()
    where = [(0, 0, 0), (0, 0, 1), (1, 1, 0)]  # image, row, column
    with torch.no_grad():
        for (n, y, x), t, s in zip(where, t_values, s_values):
            teacher[n, :, y, x] = t
            student[n, :, y, x] = s
    term = RelationalKD('neck', 'neck', embeddings='gt_instances',
                        roi_size=1, sampling_ratio=1)
    term.setup([student], [teacher], None)
    loss = term(student, teacher, samples, iteration=0)
    expected = 25 * rkd_distance_loss(LINE, RIGHT) + \
        50 * rkd_angle_loss(LINE, RIGHT)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert student.grad.abs().sum() > 0


def test_no_instance_gives_zero_still_connected():
    student = torch.randn(2, 3, 8, 8, requires_grad=True)
    term = RelationalKD('neck', 'neck', embeddings='gt_instances')
    term.setup([student], [torch.randn(2, 5, 8, 8)], None)
    loss = term(student, torch.randn(2, 5, 8, 8), _det_samples([[], []]),
                iteration=0)
    assert loss.item() == 0
    loss.backward()
    assert student.grad is not None


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(distance_weight=-1), ValueError, 'distance_weight'),
    (dict(angle_weight='a'), TypeError, 'angle_weight'),
    (dict(distance_weight=0, angle_weight=0), ValueError, 'both 0'),
    (dict(embeddings='boxes'), ValueError, 'embeddings'),
    (dict(roi_size=0), ValueError, 'roi_size'),
    (dict(roi_size=2.5), TypeError, 'roi_size'),
    (dict(sampling_ratio=-1), ValueError, 'sampling_ratio'),
    (dict(finest_scale=0), ValueError, 'finest_scale'),
    (dict(level=-1), ValueError, 'level'),
    (dict(num_classes=0), ValueError, 'num_classes')])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        RelationalKD('neck', 'neck', **kwargs)


def test_build_errors_name_the_term():
    term = RelationalKD('neck', 'neck', embeddings='gt_instances', level=3)
    term.name = 'rkd'
    maps = [torch.zeros(1, 2, 4, 4)] * 2
    with pytest.raises(ValueError, match=r"'rkd'.*level=3"):
        term.setup(maps, maps, None)
    mixed = RelationalKD('backbone', 'backbone', embeddings='gt_instances')
    mixed.name = 'rkd'
    with pytest.raises(ValueError, match=r"'rkd'.*channels"):
        mixed.setup([torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2)],
                    maps, None)
    regions = RelationalKD('a', 'b', embeddings='class_regions')
    regions.name = 'rkd'
    with pytest.raises(ValueError, match=r"'rkd'.*num_classes"):
        regions.setup(maps, maps, None)


def test_end_to_end_on_a_tiny_detector(det_teacher_ckpt):
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=det_teacher_ckpt),
        distill=dict(rkd=dict(type='RelationalKD', student='neck',
                              teacher='neck')),
        probe_size=(64, 64))
    assert model.distill_terms.rkd.embeddings == 'gt_instances'
    inputs, samples = make_probe_batch(model.student, (64, 64))
    extra = torch.tensor([[4., 4., 20., 30.], [30., 10., 60., 40.]])
    samples[0].gt_instances = InstanceData(
        bboxes=torch.cat([samples[0].gt_instances.bboxes, extra]),
        labels=torch.zeros(3, dtype=torch.long))
    losses = model.loss(torch.randn_like(inputs), samples)
    loss = losses['loss_distill_rkd']
    assert loss.item() > 0
    loss.backward()
    grad = model.student.neck.fpn_convs[0].conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_end_to_end_on_a_tiny_segmentor(tmp_path, seg_scope):
    ckpt = save_teacher(tiny_pspnet(16, 32), str(tmp_path / 't.pth'),
                        'mmseg')
    model = Distiller(
        student=tiny_pspnet(), teacher=dict(config=tiny_pspnet(16, 32),
                                            checkpoint=ckpt),
        distill=dict(rkd=dict(type='RelationalKD',
                              student='decode_head.bottleneck',
                              teacher='decode_head.bottleneck')),
        probe_size=(32, 32))
    term = model.distill_terms.rkd
    assert term.embeddings == 'class_regions' and term.num_classes == 4
    inputs, samples = make_probe_batch(model.student, (32, 32))
    torch.manual_seed(0)
    for sample in samples:
        sample.gt_sem_seg.data = torch.randint(0, 4, (1, 32, 32))
    losses = model.loss(torch.rand_like(inputs), samples)
    loss = losses['loss_distill_rkd']
    assert loss.item() > 0
    loss.backward()
    grad = model.student.decode_head.bottleneck.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_class_regions_without_label_maps_name_the_fix():
    term = RelationalKD('a', 'b', embeddings='class_regions', num_classes=4)
    term.name = 'rkd'
    maps = torch.randn(2, 3, 8, 8)
    term.setup([maps], [maps], None)
    samples = _det_samples([[[2, 2, 30, 30]], [[0, 30, 40, 64]]])
    with pytest.raises(
            ValueError, match=r"'rkd'.*class_regions.*gt_sem_seg.*instances"):
        term(maps, maps, samples, iteration=0)


def test_under_autocast_the_loss_is_float32():
    torch.manual_seed(0)
    samples = _det_samples([[[2, 2, 30, 30], [20, 10, 60, 40]],
                            [[0, 30, 40, 64]]])
    student, teacher = torch.randn(2, 4, 16, 16), torch.randn(2, 8, 16, 16)
    term = RelationalKD('neck', 'neck', embeddings='gt_instances')
    term.setup([student], [teacher], None)
    plain = term(student, teacher, samples, iteration=0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = term(student.bfloat16(), teacher.bfloat16(), samples,
                   iteration=0)
    assert low.dtype == torch.float32 and plain.item() > 0
    assert low.item() == pytest.approx(plain.item(), rel=5e-2)
