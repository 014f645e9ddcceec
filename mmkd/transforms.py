"""Data transforms: images of a second view or modality for a teacher."""
from typing import Dict, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from .registry import TRANSFORMS


def image_to_tensor(image: Union[np.ndarray, torch.Tensor],
                    key: str) -> torch.Tensor:
    """An ``(H, W)`` or ``(H, W, C)`` image as a contiguous ``(C, H, W)``
    tensor, as ``PackDetInputs`` packs ``img``."""
    if isinstance(image, torch.Tensor):
        tensor = image
    elif isinstance(image, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(image))
    else:
        raise TypeError(f'PackExtraInputs: results[{key!r}] is a '
                        f'{type(image).__name__}, not an image array.')
    if tensor.dim() == 2:
        tensor = tensor[None]
    elif tensor.dim() == 3:
        tensor = tensor.permute(2, 0, 1)
    else:
        raise ValueError(f'PackExtraInputs: results[{key!r}] has shape '
                         f'{tuple(tensor.shape)}; expected (H, W) or '
                         '(H, W, C).')
    return tensor.contiguous()


@TRANSFORMS.register_module()
class PackExtraInputs(BaseTransform):
    """Pack the sample as ``pack`` does, plus images under other keys.

    A teacher that sees another view or modality of the sample than the
    student (``teachers=dict(depth=dict(..., inputs=dict(key='depth')))``)
    reads it from that key of the batch. This transform replaces the
    pipeline's last step (``PackDetInputs``/``PackSegInputs``): it runs
    that step and adds each ``results[key]`` (an ``(H, W[, C])`` array put
    there by an earlier transform, e.g. a loader of the depth map) as a
    ``(C, H, W)`` tensor under ``key``; the data loader's collate keeps it
    as a list beside ``inputs``, and the distiller preprocesses it with the
    teacher's own data preprocessor.

    The transforms before it change only what they know (``img``, boxes,
    masks): give the extra image the same geometry yourself (load and
    resize it with the same scale in the transform that adds it, and
    leave out random flips and crops, or write them to treat both keys).

    Args:
        keys: the result keys to pack, e.g. ``('depth', )``.
        pack: the packing transform it wraps. Default
            ``dict(type='PackDetInputs')``.

    Examples:
        >>> train_pipeline = [
        ...     dict(type='LoadImageFromFile'),
        ...     dict(type='LoadAnnotations', with_bbox=True),
        ...     dict(type='MyLoadDepth'),  # results['depth'] = (H, W) array
        ...     dict(type='mmkd.PackExtraInputs', keys=('depth', ),
        ...          pack=dict(type='PackDetInputs'))]
    """

    def __init__(self, keys: Sequence[str],
                 pack: Union[dict, BaseTransform] = dict(
                     type='PackDetInputs')) -> None:
        if isinstance(keys, str):
            keys = (keys, )
        keys = tuple(keys)
        if not keys or not all(isinstance(k, str) and k for k in keys) or \
                {'inputs', 'data_samples'} & set(keys):
            raise ValueError(
                'PackExtraInputs.keys must name result keys other than '
                f'"inputs" and "data_samples"; got {keys!r}.')
        self.keys = keys
        self.pack = TRANSFORMS.build(pack) if isinstance(pack, dict) \
            else pack

    def transform(self, results: Dict) -> Dict:
        missing = [k for k in self.keys if k not in results]
        if missing:
            raise KeyError(
                f'PackExtraInputs: the sample has no {missing} (it has '
                f'{sorted(results)}); add a transform before it that loads '
                'them into the results dict.')
        extras = {k: image_to_tensor(results[k], k) for k in self.keys}
        packed = self.pack(results)
        packed.update(extras)
        return packed

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(keys={self.keys!r}, '
                f'pack={self.pack!r})')
