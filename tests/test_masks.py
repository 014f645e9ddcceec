import pytest
import torch
import torch.nn as nn
from mmengine.structures import InstanceData

from mmkd.masks import FGFIMask, GtBoxMask


def _sample(boxes, batch_input_shape=(32, 32)):
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(batch_input_shape=batch_input_shape))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    return sample


def test_gt_box_mask_covers_every_overlapped_cell():
    mask = GtBoxMask(bg_weight=0.1)
    # stride 8 on a 32×32 input: box x/y 4..12 touches cells 0 and 1
    (m,) = mask([(1, 16, 4, 4)], [_sample([[4, 4, 12, 12]])], 'cpu')
    expected = torch.full((4, 4), 0.1)
    expected[0:2, 0:2] = 1
    assert torch.equal(m[0, 0], expected)


def test_gt_box_mask_gives_a_tiny_box_one_cell_per_level():
    mask = GtBoxMask()
    m8, m16 = mask([(1, 4, 4, 4), (1, 4, 2, 2)],
                   [_sample([[17, 17, 18, 18]])], 'cpu')
    assert m8.sum() == 1 and m8[0, 0, 2, 2] == 1
    assert m16.sum() == 1 and m16[0, 0, 1, 1] == 1


class _Student(nn.Module):

    def __init__(self):
        super().__init__()
        from mmdet.models.task_modules import AnchorGenerator
        self.bbox_head = nn.Module()
        # one 8×8 anchor per cell, centred on the cell (offset 0.5)
        self.bbox_head.prior_generator = AnchorGenerator(
            strides=[8], ratios=[1.0], scales=[1.0], center_offset=0.5)


def test_fgfi_mask_worked_example():
    """4×4 grid, stride 8, anchor of cell (r, c) = [8c, 8r, 8c+8, 8r+8].

    Box A = [0, 0, 16, 8]: IoU 0.5 with cells (0,0) and (0,1), else 0;
    max 0.5, thr 0.25 -> both cells.
    Box B = [16, 16, 28, 28] (area 144): IoU 64/144 = 0.444 with (2,2),
    32/176 = 0.182 with (2,3) and (3,2), 16/192 = 0.083 with (3,3);
    thr = 0.222 -> only (2,2).
    """
    mask = FGFIMask(thr=0.5)
    mask.setup(_Student())
    (m,) = mask([(1, 8, 4, 4)],
                [_sample([[0, 0, 16, 8], [16, 16, 28, 28]])], 'cpu')
    expected = torch.zeros(4, 4)
    expected[0, 0] = expected[0, 1] = expected[2, 2] = 1
    assert torch.equal(m[0, 0], expected)


def test_fgfi_threshold_ratio_matters():
    mask = FGFIMask(thr=0.4)  # 0.4 · 0.444 = 0.178 < 0.182
    mask.setup(_Student())
    (m,) = mask([(1, 8, 4, 4)], [_sample([[16, 16, 28, 28]])], 'cpu')
    assert m[0, 0].nonzero().tolist() == [[2, 2], [2, 3], [3, 2]]


def test_fgfi_image_without_boxes_is_all_background():
    mask = FGFIMask()
    mask.setup(_Student())
    (m,) = mask([(2, 8, 4, 4)], [_sample([]), _sample([[0, 0, 16, 8]])],
                'cpu')
    assert m[0].sum() == 0 and m[1].sum() == 2


class _TwoLevelStudent(nn.Module):
    """Strides 8 and 16, two anchors a location (sides 1× and 2× stride)."""

    def __init__(self, strides=(8, 16)):
        super().__init__()
        from mmdet.models.task_modules import AnchorGenerator
        self.bbox_head = nn.Module()
        self.bbox_head.prior_generator = AnchorGenerator(
            strides=list(strides), ratios=[1.0], scales=[1.0, 2.0],
            center_offset=0.5)


def _iou(a, b):
    w = max(0., min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0., min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def _fgfi_by_hand(boxes, sizes, strides, thr=0.5):
    """The FGFI mask by explicit loops: the anchors of cell (r, c) on a
    stride-s level are squares of side s and 2s centred on the cell."""
    anchors = []  # (level, r, c, box)
    for level, ((h, w), s) in enumerate(zip(sizes, strides)):
        for r in range(h):
            for c in range(w):
                cx, cy = s * c + s / 2, s * r + s / 2
                for side in (s, 2 * s):
                    half = side / 2
                    anchors.append((level, r, c, (cx - half, cy - half,
                                                  cx + half, cy + half)))
    masks = [torch.zeros(h, w) for h, w in sizes]
    for box in boxes:
        ious = [_iou(box, a[3]) for a in anchors]
        best = max(ious)
        for (level, r, c, _), iou in zip(anchors, ious):
            if best > 0 and iou > thr * best:
                masks[level][r, c] = 1
    return masks


def test_fgfi_mask_two_anchors_two_levels_matches_loops():
    torch.manual_seed(0)
    xy = torch.rand(6, 2) * 40
    wh = torch.rand(6, 2) * 20 + 4
    boxes = torch.cat([xy, xy + wh], dim=1).tolist()
    sizes = [(6, 6), (3, 3)]  # a 48×48 input at strides 8 and 16
    mask = FGFIMask()
    mask.setup(_TwoLevelStudent())
    m8, m16 = mask([(1, 4, 6, 6), (1, 4, 3, 3)],
                   [_sample(boxes, (48, 48))], 'cpu')
    e8, e16 = _fgfi_by_hand(boxes, sizes, (8, 16))
    assert e8.sum() + e16.sum() > 0
    assert torch.equal(m8[0, 0], e8) and torch.equal(m16[0, 0], e16)


def test_fgfi_mask_on_one_level_uses_the_anchors_of_its_stride():
    boxes = [[4, 4, 30, 30], [20, 30, 44, 46]]
    mask = FGFIMask()
    mask.setup(_TwoLevelStudent())
    # only the stride-16 map is read: the max IoU is over its anchors only
    (m16,) = mask([(1, 4, 3, 3)], [_sample(boxes, (48, 48))], 'cpu')
    (e16,) = _fgfi_by_hand(boxes, [(3, 3)], (16,))
    assert torch.equal(m16[0, 0], e16)


def test_fgfi_mask_rejects_a_level_of_no_anchor_stride():
    mask = FGFIMask()
    mask.setup(_TwoLevelStudent(strides=(8, 32)))
    with pytest.raises(ValueError,
                       match=r'stride 16x16.*\(8, 8\), \(32, 32\)'):
        mask([(1, 4, 3, 3)], [_sample([[0, 0, 8, 8]], (48, 48))], 'cpu')


def test_fgfi_without_anchor_generator_is_a_clear_error():
    with pytest.raises(ValueError, match='anchor generator'):
        FGFIMask().setup(nn.Module())
