"""What a teacher slot sees: the student's batch rescaled, or images of
another key of the batch (a second view or modality).

- ``inputs=dict(scale=s)``: the preprocessed images are resized by ``s``
  (bilinear) and each sample's ground truth alike: boxes, masks, semantic
  maps and the shapes in its meta information, so a teacher that reads
  them (e.g. a DETR's image sizes) sees one consistent, rescaled sample.
- ``inputs=dict(key='depth')``: the batch carries ``data['depth']`` beside
  ``data['inputs']`` (:class:`mmkd.PackExtraInputs` packs it);
  :class:`ExtraInputsPreprocessor` keeps it through the distiller's data
  preprocessor and the teacher's own preprocessor normalises and pads it.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

#: the meta information keys that hold (H, W) sizes of the input
SHAPE_KEYS = ('img_shape', 'pad_shape', 'batch_input_shape')


def _scaled_shape(shape: Sequence[int], scale: float) -> tuple:
    return tuple(int(round(v * scale)) for v in shape[:2]) + \
        tuple(shape[2:])


def rescale_sample(sample: BaseDataElement, scale: float,
                   size: Tuple[int, int]) -> BaseDataElement:
    """A copy of ``sample`` whose ground truth and meta information match
    its image resized by ``scale`` (to ``size`` for the padded batch); the
    sample itself is unchanged (its fields are copied before they are
    rescaled, so the student's ground truth stays as it was)."""
    sample = sample.clone()
    meta = {}
    for key in SHAPE_KEYS:
        if key in sample.metainfo:
            meta[key] = _scaled_shape(sample.metainfo[key], scale)
    if 'batch_input_shape' in sample.metainfo:
        meta['batch_input_shape'] = tuple(size)
    if 'scale_factor' in sample.metainfo:
        meta['scale_factor'] = tuple(
            f * scale for f in sample.metainfo['scale_factor'])
    sample.set_metainfo(meta)
    for name in ('gt_instances', 'ignored_instances'):
        if name not in sample:
            continue
        instances = getattr(sample, name).clone()
        if 'bboxes' in instances:
            boxes = instances.bboxes
            if hasattr(boxes, 'rescale_'):  # mmdet's box types
                boxes = boxes.clone()
                boxes.rescale_((scale, scale))
            else:
                boxes = boxes * scale
            instances.bboxes = boxes
        if 'masks' in instances and hasattr(instances.masks, 'resize'):
            height, width = instances.masks.height, instances.masks.width
            instances.masks = instances.masks.resize(
                (int(round(height * scale)), int(round(width * scale))))
        setattr(sample, name, instances)
    for name in ('gt_sem_seg', 'gt_depth_map'):
        if name not in sample or 'data' not in getattr(sample, name):
            continue
        field = getattr(sample, name).clone()
        mode = 'nearest' if name == 'gt_sem_seg' else 'bilinear'
        field.data = F.interpolate(field.data[None].float(),
                                   scale_factor=scale,
                                   mode=mode)[0].to(field.data.dtype)
        setattr(sample, name, field)
    return sample


def rescale_batch(inputs: torch.Tensor,
                  data_samples: Sequence[BaseDataElement], scale: float
                  ) -> Tuple[torch.Tensor, List[BaseDataElement]]:
    """The batch as a teacher at ``scale`` times the resolution sees it:
    the images resized (bilinear) and copies of the samples with their
    ground truth resized alike (:func:`rescale_sample`)."""
    resized = F.interpolate(inputs, scale_factor=scale, mode='bilinear',
                            align_corners=False)
    size = tuple(resized.shape[-2:])
    return resized, [rescale_sample(s, scale, size) for s in data_samples]


class ExtraInputsPreprocessor(nn.Module):
    """The student's data preprocessor, keeping images of other batch keys.

    In training it takes ``data[key]`` out of the batch for every ``key``
    a teacher reads, runs the student's preprocessor on the rest and
    returns its result with ``extra_inputs={key: the raw images}``, which
    the distiller's ``forward`` passes on. Outside training the extra
    keys are dropped (validation runs the student alone).

    Args:
        preprocessor: the student's data preprocessor (shared, not
            copied: the state dict is unchanged).
        keys: the batch keys teachers read.
    """

    def __init__(self, preprocessor: nn.Module, keys: Sequence[str]) -> None:
        super().__init__()
        self.preprocessor = preprocessor
        self.keys = tuple(keys)

    def forward(self, data: Union[dict, tuple, list],
                training: bool = False) -> Union[dict, list]:
        extras: Dict[str, List[torch.Tensor]] = {}
        if isinstance(data, dict):
            data = dict(data)
            extras = {k: data.pop(k) for k in self.keys if k in data}
        out = self.preprocessor(data, training)
        if training and isinstance(out, dict):
            out = dict(out, extra_inputs=extras)
        return out

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:  # mean, std, ... of the student's
            return getattr(super().__getattr__('preprocessor'), name)


def extra_inputs_of(extra_inputs: Optional[dict], key: str, slot: str
                    ) -> List[torch.Tensor]:
    """``extra_inputs[key]``, or a KeyError saying how to add the key."""
    if not extra_inputs or key not in extra_inputs:
        have = sorted(extra_inputs or ())
        raise KeyError(
            f'Teacher {slot!r} reads the images of batch key {key!r} '
            f'(inputs=dict(key={key!r})), but the batch has no such key '
            f'(extra keys: {have}). Put dict(type="mmkd.PackExtraInputs", '
            f'keys=({key!r}, ), pack=dict(type="PackDetInputs")) (or '
            'PackSegInputs) at the end of the training pipeline, after a '
            f'transform that loads results[{key!r}].')
    return extra_inputs[key]


def copy_samples(data_samples: Sequence[BaseDataElement]
                 ) -> List[BaseDataElement]:
    """Deep copies, for a preprocessor that edits samples in place."""
    return [copy.deepcopy(s) for s in data_samples]
