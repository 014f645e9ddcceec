"""TargetAwareFeatureKD (DETRDistill's target-aware feature distillation)
on hand-computed queries, scores and maps."""
import math

import pytest
import torch
import torch.nn as nn
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmkd.losses import TargetAwareFeatureKD
from mmkd.losses.detr_target_aware import (TeacherTransformer,
                                           select_target_queries,
                                           target_aware_mask)


def _logit(p):
    return math.log(p / (1 - p))


def test_mask_is_the_score_weighted_cosine_floored_and_normalised():
    # queries (1, 0) and (0, 2) weighted 0.5 and 1; three locations: along
    # the first query, along the second, opposite the first
    queries = torch.tensor([[[1., 0.], [0., 2.]]])
    scores = torch.tensor([[0.5, 1.0]])
    feature = torch.tensor([[[2., 0., -1.], [0., 3., 0.]]]).unsqueeze(2)
    mask = target_aware_mask(queries, scores, feature)
    # raw 0.5, 1.0, -0.5 -> floored 0.5, 1.0, 0.01 -> over the max 1.0
    assert mask.shape == (1, 1, 1, 3)
    assert torch.allclose(mask.flatten(), torch.tensor([0.5, 1.0, 0.01]))
    # a weaker second query: raw 0.5, 0.25, -0.5 -> / 0.5
    mask = target_aware_mask(queries, torch.tensor([[0.5, 0.25]]), feature)
    assert torch.allclose(mask.flatten(), torch.tensor([1.0, 0.5, 0.02]))


def test_queries_are_ranked_by_class_score_times_best_gt_iou():
    # two queries, two classes; image 10 x 10
    logits = torch.tensor([[[_logit(0.9), _logit(0.2)],
                            [_logit(0.3), _logit(0.8)]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.4, 0.4],     # (3, 3, 7, 7)
                           [0.2, 0.2, 0.2, 0.2]]])   # (1, 1, 3, 3)
    gts = [torch.tensor([[3., 3., 7., 7.], [1., 1., 3., 5.]])]
    factors = torch.tensor([[10., 10., 10., 10.]])
    indices, scores = select_target_queries(logits, boxes, gts, factors,
                                            topk=3, use_sigmoid=True)
    # (q0, c0) 0.9 x IoU 1; (q1, c1) 0.8 x IoU 4/8; (q1, c0) 0.3 x 0.5
    assert indices.tolist() == [[0, 1, 1]]
    assert torch.allclose(scores, torch.tensor([[0.9, 0.4, 0.15]]))
    # without boxes the class score alone; topk is capped at Q * C
    indices, scores = select_target_queries(
        logits, boxes, [torch.zeros(0, 4)], factors, topk=10,
        use_sigmoid=True)
    assert indices.tolist() == [[0, 1, 1, 0]]
    assert torch.allclose(scores, torch.tensor([[0.9, 0.8, 0.3, 0.2]]))


def test_softmax_heads_leave_the_background_channel_out():
    # probabilities (0.2, 0.1 | bg 0.7) and (0.6, 0.3 | bg 0.1)
    probs = torch.tensor([[[0.2, 0.1, 0.7], [0.6, 0.3, 0.1]]])
    indices, scores = select_target_queries(
        probs.log(), torch.zeros(1, 2, 4), [torch.zeros(0, 4)],
        torch.ones(1, 4), topk=2, use_sigmoid=False)
    assert indices.tolist() == [[1, 1]]
    assert torch.allclose(scores, torch.tensor([[0.6, 0.3]]))


def _teacher(layers: int) -> TeacherTransformer:
    """Queries (1, 0) and (0, 2) scored 0.5 and 0.25 on every layer, over
    the three-location map of the first test."""
    hidden = torch.tensor([[1., 0.], [0., 2.]]).expand(layers, 1, 2, 2)
    logits = torch.tensor([[_logit(0.5)], [_logit(0.25)]]).expand(
        layers, 1, 2, 1)
    feature = torch.tensor([[[2., 0., -1.], [0., 3., 0.]]]).unsqueeze(2)
    return TeacherTransformer(
        features=[feature], hidden_states=hidden, cls_logits=logits,
        boxes=torch.full((layers, 1, 2, 4), 0.5), use_sigmoid=True,
        head=nn.Identity())


def _sample() -> DetDataSample:
    sample = DetDataSample(metainfo=dict(img_shape=(1, 3)))
    sample.gt_instances = InstanceData(bboxes=torch.zeros(0, 4))
    return sample


@pytest.mark.parametrize('teacher_layers,expected_layers',
                         [('all', 2), ('last', 1), ([0], 1), ([0, -1], 2)])
def test_loss_is_the_masked_mse_summed_over_teacher_layers(
        teacher_layers, expected_layers):
    term = TargetAwareFeatureKD(adaptor=None, topk=2,
                                teacher_layers=teacher_layers)
    teacher = _teacher(2)
    term.layer_indices = term.resolve_layers(2)
    # the student differs by 1 in both channels everywhere; mask (1, 0.5,
    # 0.02): mean over 2 channels x 3 locations of M^2
    student = [teacher.features[0] + 1]
    per_layer = (1 + 0.25 + 0.0004) * 2 / 6
    loss = term.compute(student, teacher, [_sample()])
    assert torch.isclose(loss, torch.tensor(per_layer * expected_layers))


def test_location_weights_are_the_squared_masks_summed_over_layers():
    # what the loss weighs each squared error by, and feature_maps draws
    term = TargetAwareFeatureKD(adaptor=None, topk=2)
    term.layer_indices = term.resolve_layers(2)
    weights = term.location_weights(_teacher(2), [_sample()])
    assert len(weights) == 1 and weights[0].shape == (1, 1, 1, 3)
    mask = torch.tensor([1.0, 0.5, 0.02])
    assert torch.allclose(weights[0].flatten(), 2 * mask ** 2)


def test_gradients_reach_the_student_map_and_its_adaptor_only():
    term = TargetAwareFeatureKD(topk=2, teacher_layers='last')
    teacher = _teacher(1)
    student = torch.randn(1, 3, 1, 3, requires_grad=True)
    from mmkd.losses.aligned import AlignedFeatureTerm
    AlignedFeatureTerm.setup(term, [student], teacher.features, None)
    term.layer_indices = [0]
    loss = term.compute([student], teacher, [_sample()])
    loss.backward()
    assert student.grad.abs().sum() > 0
    assert all(p.grad is not None for p in term.adaptors.parameters())


@pytest.mark.parametrize('kwargs,error', [
    (dict(topk=0), ValueError), (dict(topk=2.5), ValueError),
    (dict(teacher_layers='first'), TypeError),
    (dict(teacher_layers=[]), TypeError), (dict(floor=0), ValueError),
    (dict(floor=2), ValueError), (dict(teacher_head=''), TypeError)])
def test_bad_arguments_are_refused_with_a_message(kwargs, error):
    with pytest.raises(error):
        TargetAwareFeatureKD(**kwargs)


def test_teacher_layers_out_of_range_name_the_decoder_depth():
    term = TargetAwareFeatureKD(teacher_layers=[0, 6])
    with pytest.raises(ValueError, match='decoder of 6 layers'):
        term.resolve_layers(6)
