"""Which feature-map locations a feature-imitation term weighs, and how much.

A mask maps the feature shapes of every level and the batch's ground truth
to one weight map per level, shaped (N, 1, H, W). Boxes are in the
coordinates of the padded batch input; a level's stride is the batch input
size divided by its feature size.

Masks are float32 whatever the dtype of the features they weigh (float16 or
bfloat16 under autocast): they are built from box coordinates in float32,
so anchor IoUs and cell bounds do not lose precision, and the terms compute
their losses in float32.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement
from torch.nn.utils.rnn import pad_sequence

from .registry import MODELS
from .utils.model_kind import is_segmentor
from .utils.validation import check_fraction, check_loss_weight

Shape = Tuple[int, ...]


def _gt_boxes(sample: BaseDataElement) -> torch.Tensor:
    bboxes = sample.gt_instances.bboxes
    return getattr(bboxes, 'tensor', bboxes)  # mmdet HorizontalBoxes


def padded_boxes(boxes: Sequence[torch.Tensor], like: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every image's (K_i, 4) boxes padded to the largest count, for
    computing on all images at once: (B, K, 4) boxes (padding: zeros) in
    ``like``'s dtype and device, and the (B, K) bool mask of the real
    ones."""
    boxes = [b.to(like).reshape(-1, 4) for b in boxes]
    padded = pad_sequence(boxes, batch_first=True)
    present = pad_sequence([b.new_ones(b.shape[0], dtype=torch.bool)
                            for b in boxes], batch_first=True)
    return padded, present


def _batch_input_shape(samples: Sequence[BaseDataElement]) -> Tuple[int, int]:
    return tuple(samples[0].metainfo['batch_input_shape'])


class FeatureMask(nn.Module):
    """Base class: ``forward`` returns one (N, 1, H, W) weight map a level."""

    def setup(self, student: nn.Module) -> None:
        """Bind to the student model once, at build time."""


class BoxMask(FeatureMask):
    """A mask built from ground-truth boxes: not for segmentors."""

    def setup(self, student: nn.Module) -> None:
        if is_segmentor(student):
            raise ValueError(
                f'{type(self).__name__} weighs locations by ground-truth '
                f'boxes, but the student {type(student).__name__} is an '
                'mmseg segmentor, which has none: remove the mask.')

    def forward(self, shapes: Sequence[Shape],
                data_samples: Sequence[BaseDataElement],
                device: torch.device) -> List[torch.Tensor]:
        raise NotImplementedError


@MODELS.register_module()
class GtBoxMask(BoxMask):
    """Weight 1 on locations covered by a ground-truth box, else ``bg_weight``.

    A location (a cell of the feature grid) is foreground when its cell
    overlaps a box, so every box covers at least one cell on every level.
    This is the focal mask of FGD (Yang et al., CVPR 2022) without its scale
    weighting, and with ``bg_weight > 0`` a background-weighted imitation.

    Args:
        bg_weight: weight of background locations. Default 0 (foreground
            only).
    """

    def __init__(self, bg_weight: float = 0.0) -> None:
        super().__init__()
        self.bg_weight = check_loss_weight(bg_weight, 'bg_weight')

    def forward(self, shapes: Sequence[Shape],
                data_samples: Sequence[BaseDataElement],
                device: torch.device) -> List[torch.Tensor]:
        in_h, in_w = _batch_input_shape(data_samples)
        # one device-to-host copy per image, shared by every level
        boxes = [_gt_boxes(sample).float().tolist() for sample in data_samples]
        masks = []
        for shape in shapes:
            h, w = shape[-2:]
            sx, sy = w / in_w, h / in_h
            mask = torch.full((len(data_samples), 1, h, w), self.bg_weight,
                              dtype=torch.float32)
            for i, image_boxes in enumerate(boxes):
                for x1, y1, x2, y2 in image_boxes:
                    c1 = max(math.floor(x1 * sx), 0)
                    r1 = max(math.floor(y1 * sy), 0)
                    c2 = min(max(math.ceil(x2 * sx), c1 + 1), w)
                    r2 = min(max(math.ceil(y2 * sy), r1 + 1), h)
                    mask[i, 0, r1:r2, c1:c2] = 1
            masks.append(mask.to(device))
        return masks


@MODELS.register_module()
class FGFIMask(BoxMask):
    """Fine-grained imitation mask (Wang et al., CVPR 2019).

    For every gt box k the IoU with all anchors of the imitated levels is
    computed; ``thr_k = thr * max IoU_k`` (ψ = 0.5 in the paper). A location
    is foreground when any of its anchors has IoU > ``thr_k`` with any box
    (OR over boxes). The paper imitates one feature map; when several FPN
    levels are read, the maximum is taken over the anchors of all of them
    together. The anchors come from the student's own anchor generator, so
    the mask matches the detector being trained. A level read is matched
    to the generator level of the same stride (batch input size over
    feature size), so a single level such as ``neck.fpn_convs.1`` works.

    Args:
        thr: the ratio ψ of each box's best IoU. Default 0.5.
        prior_generator: module path of the anchor generator in the student;
            default: the first of ``bbox_head.prior_generator`` and
            ``rpn_head.prior_generator`` that exists.
    """

    def __init__(self, thr: float = 0.5,
                 prior_generator: Optional[str] = None) -> None:
        super().__init__()
        self.thr = check_fraction(thr, 'thr')
        self.prior_generator_path = prior_generator
        self._generator = None

    def setup(self, student: nn.Module) -> None:
        super().setup(student)
        paths = [self.prior_generator_path] if self.prior_generator_path \
            else ['bbox_head.prior_generator', 'rpn_head.prior_generator']
        for path in paths:
            obj = student
            for part in path.split('.'):
                obj = getattr(obj, part, None)
            if obj is not None and hasattr(obj, 'grid_priors'):
                self._generator = obj
                return
        raise ValueError(
            f'FGFIMask needs an anchor generator in the student; none found '
            f'at {paths}. Set prior_generator= to its attribute path.')

    def _generator_levels(self, sizes: Sequence[Tuple[int, int]],
                          input_shape: Tuple[int, int]) -> List[int]:
        """The anchor-generator level of each feature size read.

        All levels read in order when their count matches the generator's;
        otherwise the level whose stride is nearest to
        ``input size / feature size`` (within a factor 1.5 on each axis).
        """
        generator = self._generator
        if len(sizes) == generator.num_levels:
            return list(range(len(sizes)))
        strides = [(float(s[0]), float(s[1])) for s in generator.strides]
        in_h, in_w = input_shape
        levels = []
        for h, w in sizes:
            stride_x, stride_y = in_w / w, in_h / h
            gaps = [max(abs(math.log(stride_x / sx)),
                        abs(math.log(stride_y / sy))) for sx, sy in strides]
            level = min(range(len(strides)), key=gaps.__getitem__)
            if gaps[level] > math.log(1.5) or level in levels:
                raise ValueError(
                    f'FGFIMask: a {h}x{w} feature map of a {in_h}x{in_w} '
                    f'input (stride {stride_x:g}x{stride_y:g}) matches no '
                    f'single level of the anchor generator (strides '
                    f'{[tuple(map(int, s)) for s in strides]}); read the '
                    'levels the anchors are laid on, e.g. "neck".')
            levels.append(level)
        return levels

    def forward(self, shapes: Sequence[Shape],
                data_samples: Sequence[BaseDataElement],
                device: torch.device) -> List[torch.Tensor]:
        from mmdet.structures.bbox import bbox_overlaps
        generator = self._generator
        if generator is None:
            raise RuntimeError('FGFIMask.setup() was not called.')
        sizes = [tuple(s[-2:]) for s in shapes]
        levels = self._generator_levels(
            sizes, _batch_input_shape(data_samples))
        anchors = [generator.single_level_grid_priors(
            size, level, dtype=torch.float32, device=device)
            for size, level in zip(sizes, levels)]
        counts = [len(a) for a in anchors]
        all_anchors = torch.cat(anchors)
        masks = [torch.zeros(len(data_samples), 1, h, w,
                             dtype=torch.float32, device=device)
                 for h, w in sizes]
        for i, sample in enumerate(data_samples):
            boxes = _gt_boxes(sample).to(device).float()
            if len(boxes) == 0:
                continue
            ious = bbox_overlaps(boxes, all_anchors)  # (K, total anchors)
            best = ious.max(dim=1, keepdim=True).values
            hit = ((ious > self.thr * best) & (best > 0)).any(dim=0)
            for level, (part, (h, w)) in enumerate(
                    zip(hit.split(counts), sizes)):
                # mmdet orders priors location-major: (y * W + x) * A + a
                masks[level][i, 0] = part.view(h, w, -1).any(dim=-1).float()
        return masks
