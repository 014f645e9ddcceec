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


def test_fgfi_without_anchor_generator_is_a_clear_error():
    with pytest.raises(ValueError, match='anchor generator'):
        FGFIMask().setup(nn.Module())
