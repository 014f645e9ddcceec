"""A dummy batch to probe feature shapes of detectors and segmentors."""
from typing import List, Tuple

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement


def _is_detector(model: nn.Module) -> bool:
    try:
        from mmdet.models.detectors import BaseDetector
    except ImportError:  # pragma: no cover - mmdet not installed
        return False
    return isinstance(model, BaseDetector)


def _is_segmentor(model: nn.Module) -> bool:
    try:
        from mmseg.models.segmentors import BaseSegmentor
    except ImportError:  # pragma: no cover - mmseg not installed
        return False
    return isinstance(model, BaseSegmentor)


def make_probe_batch(model: nn.Module, size: Tuple[int, int],
                     batch_size: int = 2
                     ) -> Tuple[torch.Tensor, List[BaseDataElement]]:
    """Inputs and data samples (with one gt box / a label map) for ``model``.

    Args:
        model: an mmdet detector or an mmseg segmentor.
        size: (H, W) of the dummy input.
        batch_size: images in the batch (2 keeps batch norm well defined).
    """
    h, w = size
    meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
    inputs = torch.zeros(batch_size, 3, h, w)
    if _is_detector(model):
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        samples = []
        for _ in range(batch_size):
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = InstanceData(
                bboxes=torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]]),
                labels=torch.tensor([0]))
            samples.append(sample)
        return inputs, samples
    if _is_segmentor(model):
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        samples = []
        for _ in range(batch_size):
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(
                data=torch.zeros(1, h, w, dtype=torch.long))
            samples.append(sample)
        return inputs, samples
    raise TypeError(
        f'{type(model).__name__} is neither an mmdet detector nor an mmseg '
        'segmentor; mmkd distils models of those two kinds.')
