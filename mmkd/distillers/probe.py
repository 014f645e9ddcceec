"""A dummy batch to probe feature shapes of detectors and segmentors."""
from typing import List, Tuple

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..utils.model_kind import is_detector, is_segmentor


def _detection_samples(size: Tuple[int, int], batch_size: int,
                       meta: dict) -> List[BaseDataElement]:
    """One centred box of class 0 per image, with its instance mask and a
    semantic map, so that box, instance and panoptic heads all compute
    their losses."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
    h, w = size
    x1, y1, x2, y2 = w // 4, h // 4, 3 * w // 4, 3 * h // 4
    bitmap = torch.zeros(1, h, w, dtype=torch.uint8)
    bitmap[:, y1:y2, x1:x2] = 1
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32),
            labels=torch.tensor([0]),
            masks=BitmapMasks(bitmap.numpy(), h, w))
        sample.gt_sem_seg = PixelData(sem_seg=bitmap.long())
        samples.append(sample)
    return samples


def _segmentation_samples(size: Tuple[int, int], batch_size: int,
                          meta: dict) -> List[BaseDataElement]:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch_size):
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(
            data=torch.zeros(1, *size, dtype=torch.long))
        samples.append(sample)
    return samples


def make_probe_batch(model: nn.Module, size: Tuple[int, int],
                     batch_size: int = 2
                     ) -> Tuple[torch.Tensor, List[BaseDataElement]]:
    """Zero inputs and data samples with ground truth for ``model``.

    Detectors get one gt box a image with its instance mask and semantic
    map (so Mask R-CNN and panoptic models compute their losses too);
    segmentors an all-class-0 label map.

    Args:
        model: an mmdet detector or an mmseg segmentor.
        size: (H, W) of the dummy input.
        batch_size: images in the batch (2 keeps batch norm well defined).

    Raises:
        TypeError: ``model`` is neither a detector nor a segmentor.
    """
    h, w = size
    meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
    inputs = torch.zeros(batch_size, 3, h, w)
    if is_detector(model):
        return inputs, _detection_samples(size, batch_size, meta)
    if is_segmentor(model):
        return inputs, _segmentation_samples(size, batch_size, meta)
    raise TypeError(
        f'{type(model).__name__} is neither an mmdet detector nor an mmseg '
        'segmentor; mmkd distils models of those two kinds.')
