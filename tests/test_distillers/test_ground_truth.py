"""The probe's ground truth: what each kind holds, on a tiny image."""
import torch

from mmkd.distillers.ground_truth import DetectionGroundTruth
from mmkd.distillers.probe import _detection_samples, _segmentation_samples

META = dict(img_shape=(8, 12), batch_input_shape=(8, 12))


def test_box_detectors_get_boxes_and_labels_only():
    sample, = _detection_samples((8, 12), 1, META, DetectionGroundTruth())
    # the centred box spans the middle half: x 3..9 of 12, y 2..6 of 8
    assert sample.gt_instances.bboxes.tolist() == [[3., 2., 9., 6.]]
    assert sample.gt_instances.labels.tolist() == [0]
    assert set(sample.gt_instances.keys()) == {'bboxes', 'labels'}
    assert 'gt_sem_seg' not in sample and 'proposals' not in sample


def test_masks_maps_and_proposals_follow_the_box():
    samples = _detection_samples(
        (8, 12), 2, META, DetectionGroundTruth(
            instance_masks=True, semantic_map=True, proposals=True))
    inside = torch.zeros(8, 12, dtype=torch.bool)
    inside[2:6, 3:9] = True
    for sample in samples:
        masks = sample.gt_instances.masks
        assert type(masks).__name__ == 'BitmapMasks'  # as the pipeline's
        assert (masks.height, masks.width) == (8, 12)
        assert torch.equal(torch.from_numpy(masks.masks[0]).bool(), inside)
        semantic = sample.gt_sem_seg.sem_seg
        assert semantic.shape == (1, 8, 12)
        assert torch.equal(semantic[0], torch.where(inside, 0, 255))
        # the box and copies shifted by a quarter of its 6 x 4 size
        assert sample.proposals.bboxes.tolist() == [
            [3., 2., 9., 6.], [4.5, 2., 10.5, 6.], [1.5, 2., 7.5, 6.],
            [3., 3., 9., 7.], [3., 1., 9., 5.]]
        assert sample.proposals.scores.tolist() == [1.] * 5
    # each image owns its ground truth (heads edit it in place)
    assert samples[0].gt_instances.bboxes is not \
        samples[1].gt_instances.bboxes



def test_segmentors_get_a_label_map_depth_estimators_a_depth_map():
    labels, = _segmentation_samples((8, 12), 1, META, depth=False)
    assert set(labels.keys()) == {'gt_sem_seg'}
    assert torch.equal(labels.gt_sem_seg.data,
                       torch.zeros(1, 8, 12, dtype=torch.long))
    depth, = _segmentation_samples((8, 12), 1, META, depth=True)
    assert set(depth.keys()) == {'gt_depth_map'}
    expected = torch.full((1, 8, 12), 2.)
    expected[:, 2:6, 3:9] = 1.
    assert torch.equal(depth.gt_depth_map.data, expected)
