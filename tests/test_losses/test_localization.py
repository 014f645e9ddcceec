import math
import statistics
from types import SimpleNamespace

import pytest
import torch
from fake_dense_preds import fake_preds
from mmengine.structures import InstanceData

from mmkd.heads.regions import (atss_thresholds, pairwise_diou,
                                valuable_localization_region)
from mmkd.losses import (IoULocalizationKD, LocalizationDistillation,
                         TeacherBoundedRegression)
from mmkd.losses.localization import distribution_kl, teacher_bounded_l2
from mmkd.recorders import ModelRecorder, ReadSpec


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_distribution_kl_by_hand():
    bins, tau = 3, 2.0
    s = [0.0, 1.0, 2.0] * 4
    t = [2.0, 0.0, -1.0] * 4
    p_t = _softmax([v / tau for v in t[:3]])
    p_s = _softmax([v / tau for v in s[:3]])
    expected = tau**2 * sum(a * math.log(a / b)
                            for a, b in zip(p_t, p_s)) / bins
    out = distribution_kl(torch.tensor([s]), torch.tensor([t]), bins, tau)
    assert out.shape == (1, 4)
    assert torch.allclose(out, torch.full((1, 4), expected), atol=1e-6)


def test_teacher_bounded_l2_zero_case_and_gradient():
    target = torch.zeros(2, 4)
    # row 0: student error 1.0, teacher error 4.0 -> better by 3 > m: zero
    # row 1: student error 1.0, teacher error 1.1 -> not better by m: 1.0
    student = torch.tensor([[1., 0, 0, 0], [0, 1., 0, 0]],
                           requires_grad=True)
    teacher = torch.tensor([[2., 0, 0, 0], [0, 0, math.sqrt(1.1), 0]])
    out = teacher_bounded_l2(student, teacher, target, margin=0.2)
    assert out.tolist() == pytest.approx([0.0, 1.0])
    out.sum().backward()
    assert student.grad[0].abs().sum() == 0
    assert student.grad[1].tolist() == pytest.approx([0, 2.0, 0, 0])


@pytest.mark.parametrize('avg_factor', [2.0, 5.0])
def test_bounded_regression_term_sums_positives_over_the_heads_normaliser(
        avg_factor):
    # three priors, two positives (labels 0, 1 < num_classes 2); the
    # head's avg_factor is its positives (2, no sampler) or, for an RPN's
    # random sampler, its sampled anchors (5 here)
    student = torch.tensor([[1., 0, 0, 0], [0, 0.5, 0, 0], [9., 9, 9, 9]],
                           requires_grad=True)
    teacher = torch.tensor([[1., 0, 0, 0], [3., 0, 0, 0], [0., 0, 0, 0]])
    preds = fake_preds(torch.zeros(3, 2), reg_student=student,
                       reg_teacher=teacher,
                       labels=torch.tensor([0, 1, 2]),
                       avg_factor=avg_factor)
    term = TeacherBoundedRegression(margin=0.2)
    loss = term.loss(preds)
    # prior 0: 1 + .2 > 1 -> 1; prior 1: .25 + .2 < 9 -> 0; prior 2: bg
    assert loss.item() == pytest.approx(1.0 / avg_factor)
    loss.backward()
    assert student.grad[0].tolist() == pytest.approx(
        [2.0 / avg_factor, 0, 0, 0])
    assert student.grad[1:].abs().sum() == 0


def test_bounded_regression_is_zero_when_the_student_beats_the_teacher():
    student = torch.zeros(2, 4, requires_grad=True)
    preds = fake_preds(torch.zeros(2, 2), reg_student=student,
                       reg_teacher=torch.ones(2, 4),
                       bbox_targets=torch.full((2, 4), 0.1),
                       labels=torch.tensor([0, 1]))
    loss = TeacherBoundedRegression(margin=0.2).loss(preds)
    loss.backward()
    assert loss.item() == 0 and student.grad.abs().sum() == 0


def test_pairwise_diou_by_hand():
    box = torch.tensor([[5., 0, 15, 10]])
    gt = torch.tensor([[0., 0, 10, 10]])
    # IoU 50/150; centres 5 apart; enclosing box 15 x 10
    assert pairwise_diou(box, gt).item() == pytest.approx(
        1 / 3 - 25 / 325, abs=1e-5)


def _vlr_priors():
    # A (positive), B, C (far), D (one level of four priors)
    return torch.tensor([[0., 0, 10, 10], [0, 0, 20, 20],
                         [100, 100, 110, 110], [5, 0, 15, 10]])


def test_atss_threshold_and_valuable_region_by_hand():
    priors, gt = _vlr_priors(), [[0., 0, 10, 10]]
    # the 3 closest centres are A (0), D (5), B (7.07): IoUs 1, 1/3, 1/4
    ious = [1.0, 1 / 3, 0.25]
    thr = statistics.mean(ious) + statistics.stdev(ious)
    got = atss_thresholds(priors, torch.tensor(gt), [4], topk=3)
    assert got.item() == pytest.approx(thr, rel=1e-5)
    preds = fake_preds(torch.zeros(4, 2), priors=priors, gt_boxes=gt,
                       labels=torch.tensor([0, 2, 2, 2]), level_sizes=[4])
    region = valuable_localization_region(preds, topk=3, low=0.25)
    # DIoU: A 1 (>= t), B 0.1875 (< t/4 = 0.235), D 0.256 (in band), C < 0
    assert region.tolist() == [False, False, False, True]
    # the band's lower end moves with `low`
    region = valuable_localization_region(preds, topk=3, low=0.9)
    assert not region.any()


def test_valuable_region_excludes_ignored_priors_and_empty_images():
    preds = fake_preds(torch.zeros(4, 2), priors=_vlr_priors(),
                       gt_boxes=[[0., 0, 10, 10]], level_sizes=[4],
                       labels=torch.tensor([0, 2, 2, 2]),
                       label_weights=torch.tensor([1., 1, 1, 0]))
    assert not valuable_localization_region(preds, topk=3).any()
    empty = fake_preds(torch.zeros(4, 2), priors=_vlr_priors(),
                       level_sizes=[4])
    assert not valuable_localization_region(empty, topk=3).any()


def _ld_heads(reg_max=8):
    from mmdet.registry import MODELS
    common = dict(
        num_classes=3, in_channels=8, stacked_convs=1, feat_channels=8,
        reg_max=reg_max, norm_cfg=None,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0],
                              octave_base_scale=4, scales_per_octave=1,
                              strides=[8, 16]),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0,
                      loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9),
                       allowed_border=-1, pos_weight=-1, debug=False))
    torch.manual_seed(0)
    student = MODELS.build(dict(
        type='LDHead', loss_ld=dict(type='KnowledgeDistillationKLDivLoss',
                                    loss_weight=0.25, T=10), **common))
    teacher = MODELS.build(dict(type='GFLHead', **common))
    return student.train(), teacher.eval()


def test_main_region_ld_equals_mmdetection_ld_head(det_scope):
    """Same features, same gts: our main-region LD is mmdet's loss_ld."""
    student_head, teacher_head = _ld_heads()
    # spread the teacher's distributions so the KL is far from zero
    torch.nn.init.normal_(teacher_head.gfl_reg.weight, std=0.5)
    feats = [torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    gts = [InstanceData(bboxes=torch.tensor([[8., 8, 40, 44],
                                             [30, 2, 62, 28]]),
                        labels=torch.tensor([0, 2])),
           InstanceData(bboxes=torch.tensor([[0., 16, 24, 60]]),
                        labels=torch.tensor([1]))]
    metas = [dict(img_shape=(64, 64), pad_shape=(64, 64),
                  batch_input_shape=(64, 64))] * 2
    student_spec = ReadSpec('bbox_head', 'calls', ('forward', 'get_targets'))
    teacher_spec = ReadSpec('bbox_head', 'calls', ('forward', ))
    rec_s = ModelRecorder(torch.nn.ModuleDict(dict(bbox_head=student_head)),
                          [student_spec], 'student')
    rec_t = ModelRecorder(torch.nn.ModuleDict(dict(bbox_head=teacher_head)),
                          [teacher_spec], 'teacher')
    rec_s.active = rec_t.active = True
    with torch.no_grad():
        soft_targets = teacher_head(feats)[1]
    cls_scores, bbox_preds = student_head(feats)
    mmdet_losses = student_head.loss_by_feat(
        cls_scores, bbox_preds, gts, metas, soft_targets)
    expected = sum(mmdet_losses['loss_ld'])
    assert expected.item() > 1e-3

    student_calls, teacher_calls = rec_s.get(student_spec), \
        rec_t.get(teacher_spec)
    term = LocalizationDistillation()  # main region, T=10, weight 0.25
    term.setup(student_calls, teacher_calls, None)
    ours = term(student_calls, teacher_calls, [], 0)
    assert ours.item() == pytest.approx(expected.item(), abs=1e-5)
    grad_ours = torch.autograd.grad(ours, bbox_preds, retain_graph=True)
    grad_mmdet = torch.autograd.grad(expected, bbox_preds)
    for a, b in zip(grad_ours, grad_mmdet):
        assert torch.allclose(a, b, atol=1e-6)


def test_ld_weights_priors_by_the_student_max_class_score():
    bins = 3
    s_reg = torch.zeros(2, 4 * bins, requires_grad=True)
    t_reg = torch.tensor([[1., 0, 0] * 4, [0, 0, 2.] * 4])
    cls = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    head = SimpleNamespace(reg_max=bins - 1)
    preds = fake_preds(cls, reg_student=s_reg, reg_teacher=t_reg,
                       labels=torch.tensor([0, 1]), head=head)
    loss = LocalizationDistillation(temperature=1.0).loss(preds)
    kl = distribution_kl(s_reg, t_reg, bins, 1.0).mean(1)
    weights = torch.sigmoid(torch.tensor([2.0, 1.0]))
    assert loss.item() == pytest.approx((kl * weights).sum().item())
    # a negative prior contributes nothing
    preds.labels = torch.tensor([0, 2])
    loss = LocalizationDistillation(temperature=1.0).loss(preds)
    assert loss.item() == pytest.approx((kl[0] * weights[0]).item())


def test_ld_rejects_bad_arguments():
    with pytest.raises(ValueError, match='region'):
        LocalizationDistillation(region='all')
    with pytest.raises(ValueError, match='temperature'):
        LocalizationDistillation(temperature=0)
    with pytest.raises(ValueError, match='margin'):
        TeacherBoundedRegression(margin=-1)


def test_iou_localization_kd_by_hand():
    # prior 0: student [0,0,2,2] vs teacher [1,1,3,3]: IoU 1/7, enclosing
    # 9, GIoU = 1/7 - 2/9; prior 1: identical boxes (GIoU 1)
    student = torch.tensor([[0., 0, 2, 2], [0, 0, 4, 4]], requires_grad=True)
    teacher = torch.tensor([[1., 1, 3, 3], [0, 0, 4, 4]])
    cls_s = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    cls_t = torch.tensor([[2.0, 1.0], [-1.0, 0.0]])
    preds = fake_preds(cls_s, cls_t, reg_student=student,
                       reg_teacher=teacher)
    w = [abs(_sigmoid(2.0) - 0.5), abs(_sigmoid(-1.0) - 0.5)]
    giou = 1 / 7 - 2 / 9
    expected = w[0] * (1 - giou) / (w[0] + w[1])
    loss = IoULocalizationKD().loss(preds)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert student.grad[0].abs().sum() > 0
    # an ignored prior has no weight
    preds.label_weights = torch.tensor([0.0, 1.0])
    assert IoULocalizationKD().loss(preds).item() == pytest.approx(0.0)


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_iou_localization_kd_leaves_out_degenerate_teacher_boxes():
    student = torch.tensor([[0., 0, 2, 2], [0, 0, 4, 4]])
    teacher = torch.tensor([[1., 1, 3, 3], [2, 2, 2, 6]])  # no width
    preds = fake_preds(torch.zeros(2, 2), torch.ones(2, 2),
                       reg_student=student, reg_teacher=teacher)
    giou = 1 / 7 - 2 / 9
    assert IoULocalizationKD().loss(preds).item() == pytest.approx(
        1 - giou, rel=1e-5)


def test_ld_regions_sharing_one_step_match_each_alone():
    bins, head = 3, SimpleNamespace(reg_max=2)

    def preds():
        torch.manual_seed(0)
        return fake_preds(torch.randn(4, 2), reg_student=torch.randn(4, 12),
                          reg_teacher=torch.randn(4, 12),
                          priors=_vlr_priors(), gt_boxes=[[0., 0, 10, 10]],
                          labels=torch.tensor([0, 2, 2, 2]),
                          level_sizes=[4], head=head)

    main = LocalizationDistillation(temperature=2.0)
    vlr = LocalizationDistillation(region='valuable', temperature=2.0)
    shared = preds()
    together = main.loss(shared), vlr.loss(shared)
    alone = main.loss(preds()), vlr.loss(preds())
    assert together[0].item() == pytest.approx(alone[0].item())
    assert together[1].item() == pytest.approx(alone[1].item())
    # prior 0 is the positive; the VLR (top-k 9, so all 4 priors are
    # candidates: IoUs 1, 1/3, 1/4, 0, t = 0.83) holds prior 3 only
    # (DIoU 0.256; prior 1's 0.1875 is below t/4)
    p = preds()
    kl = distribution_kl(p.reg_student, p.reg_teacher, bins, 2.0).mean(1)
    score = p.cls_student.sigmoid().max(1)[0]
    assert together[0].item() == pytest.approx((kl * score)[0].item())
    assert together[1].item() == pytest.approx((kl * score)[3].item())
