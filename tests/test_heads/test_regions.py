"""The valuable localization region over a batch equals it per image."""
import dataclasses
from types import SimpleNamespace

import pytest
import torch
from fake_dense_preds import fake_preds

from mmkd.heads.regions import (atss_thresholds, pairwise_diou,
                                valuable_localization_region)


def _anchors():
    """One image's priors: a 4x4 grid of 16 px boxes at stride 8 and a
    2x2 grid of 32 px boxes at stride 16 (32 x 32 image)."""
    levels = []
    for stride, size in ((8, 16), (16, 32)):
        c = torch.arange(0, 32, stride, dtype=torch.float) + stride / 2
        cy, cx = torch.meshgrid(c, c, indexing='ij')
        centres = torch.stack([cx.flatten(), cy.flatten()], 1)
        levels.append(torch.cat([centres - size / 2, centres + size / 2], 1))
    return torch.cat(levels)


GTS = ([[2., 3, 14, 13], [10, 12, 30, 29]], [], [[0., 0, 9, 21]])


def _image(index, priors, labels):
    return fake_preds(torch.zeros(20, 2), priors=priors, labels=labels,
                      gt_boxes=GTS[index], level_sizes=[16, 4])


def test_batched_region_equals_the_region_of_each_image():
    torch.manual_seed(0)
    priors = _anchors()
    labels = torch.full((3, 20), 2)
    labels[0, 5], labels[2, 0] = 0, 1  # one positive in two images
    images = [_image(i, priors, labels[i]) for i in range(3)]
    expected = torch.cat([valuable_localization_region(p, topk=3)
                          for p in images])
    batch = dataclasses.replace(
        images[0], priors=priors.repeat(3, 1), labels=labels.flatten(),
        label_weights=torch.ones(60),
        cls_student=torch.zeros(60, 2), cls_teacher=torch.zeros(60, 2),
        gt_instances=[p.gt_instances[0] for p in images])
    got = valuable_localization_region(batch, topk=3)
    assert got.tolist() == expected.tolist()
    # computed one image at a time (a block of 20 priors x 2 gt boxes)
    blocks = valuable_localization_region(batch, topk=3, block_elements=40)
    assert blocks.tolist() == expected.tolist()
    assert got[:20].any() and got[40:].any() and not got[20:40].any()
    assert not got[5] and not got[40]  # positives are never in it


def test_thresholds_and_diou_take_leading_batch_dims():
    priors = _anchors()
    gts = torch.tensor(GTS[0])
    one = atss_thresholds(priors, gts, [16, 4], topk=3)
    two = atss_thresholds(priors.expand(2, -1, -1), gts.expand(2, -1, -1),
                          [16, 4], topk=3)
    assert two.shape == (2, 2) and torch.allclose(two, one.expand(2, -1))
    assert torch.allclose(pairwise_diou(priors[None], gts[None])[0],
                          pairwise_diou(priors, gts))


def test_region_of_a_selection_is_an_error():
    preds = _image(0, _anchors(), torch.full((20, ), 2))
    rows = preds.select(torch.arange(20) < 4)
    with pytest.raises(ValueError, match='before select'):
        valuable_localization_region(rows)


def test_batch_without_gt_boxes_has_no_region():
    preds = _image(1, _anchors(), torch.full((20, ), 2))
    preds = dataclasses.replace(preds, gt_instances=[
        SimpleNamespace(bboxes=torch.zeros(0, 4))])
    assert not valuable_localization_region(preds, topk=3).any()
