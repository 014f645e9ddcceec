"""Which priors a head-level term counts: its *region*.

- ``'main'``: the student's positives of this step (from its own
  assignment, nothing recomputed).
- ``'valid'``: every prior the head's classification loss counts
  (label weight > 0).
- ``'valuable'``: the valuable localization region of LD (Zheng et al.,
  CVPR 2022): valid negatives whose DIoU with a gt box lies in
  ``[low * t, t)``, ``t`` the ATSS threshold of that box (mean + std of the
  IoU of its candidates, the ``topk`` priors per level closest to its
  centre). The head's assigner computes ``t`` but does not return it, so
  this region is the one thing recomputed (on the device, for the whole
  batch at once, no host round trip).
"""
from typing import Any, Optional, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from torch import Tensor

from ..masks import padded_boxes
from .predictions import DensePredictions

REGIONS = ('main', 'valid', 'valuable')


def check_region(region: str, term: str = '') -> str:
    if region not in REGIONS:
        raise ValueError(f'{term}region must be one of {REGIONS}, got '
                         f'{region!r}.')
    return region


def pairwise_diou(boxes: Tensor, gts: Tensor, eps: float = 1e-6,
                  iou: Optional[Tensor] = None) -> Tensor:
    """(..., P, G) distance-IoU of boxes (..., P, 4) and gts (..., G, 4):
    IoU minus the squared centre distance over the squared diagonal of the
    smallest enclosing box (``iou``: the (..., P, G) IoU when already
    computed)."""
    if iou is None:
        iou = bbox_overlaps(boxes, gts)
    boxes, gts = boxes[..., :, None, :], gts[..., None, :, :]
    centre_b = (boxes[..., :2] + boxes[..., 2:]) / 2
    centre_g = (gts[..., :2] + gts[..., 2:]) / 2
    rho2 = ((centre_b - centre_g)**2).sum(-1)
    lt = torch.min(boxes[..., :2], gts[..., :2])
    rb = torch.max(boxes[..., 2:], gts[..., 2:])
    c2 = ((rb - lt)**2).sum(-1) + eps
    return iou - rho2 / c2


def atss_thresholds(priors: Tensor, gts: Tensor, level_sizes: Sequence[int],
                    topk: int, iou: Optional[Tensor] = None) -> Tensor:
    """(..., G) mean + std of the IoU of each gt box's ATSS candidates, as
    mmdet's ``ATSSAssigner`` computes them (unbiased std); priors
    (..., P, 4), gts (..., G, 4) (leading dims: e.g. the images of a
    batch); ``iou``: the (..., P, G) IoU when already computed."""
    centre_p = (priors[..., :2] + priors[..., 2:]) / 2
    centre_g = (gts[..., :2] + gts[..., 2:]) / 2
    distances = torch.cdist(centre_p, centre_g)
    candidates, start = [], 0
    for size in level_sizes:
        k = min(topk, size)
        idx = distances[..., start:start + size, :].topk(
            k, dim=-2, largest=False)[1]
        candidates.append(idx + start)
        start += size
    candidates = torch.cat(candidates, -2)
    if iou is None:
        iou = bbox_overlaps(priors, gts)
    overlaps = iou.gather(-2, candidates)
    return overlaps.mean(-2) + overlaps.std(-2)


def padded_gt_boxes(gt_instances: Sequence[Any],
                    like: Tensor) -> Tuple[Tensor, Tensor]:
    """The gt boxes of every image padded to the largest count: (B, G, 4)
    boxes (padding: zeros) and the (B, G) bool mask of the real ones."""
    return padded_boxes([get_box_tensor(gt.bboxes) for gt in gt_instances],
                        like)


#: the most (image, prior, gt box) triples the valuable region computes at
#: once: larger batches are split by images, so crowded images at a large
#: batch size do not hold GBs of pairwise tensors (~64 MB a float tensor)
VLR_BLOCK_ELEMENTS = 2**24


def valuable_localization_region(preds: DensePredictions, topk: int = 9,
                                 low: float = 0.25,
                                 block_elements: int = VLR_BLOCK_ELEMENTS
                                 ) -> Tensor:
    """(N,) bool: LD's valuable localization region (module docstring),
    for the images of the batch at once (gt boxes padded), in blocks of
    images of at most ``block_elements`` (image, prior, gt) triples."""
    images, per_image = preds.num_images, sum(preds.level_sizes)
    if per_image * images != preds.priors.shape[0]:
        raise ValueError(
            f'The valuable localization region needs every prior of the '
            f'batch ({images} images x {per_image} priors), got '
            f'{preds.priors.shape[0]} rows: compute it before select().')
    region = preds.priors.new_zeros(images, per_image, dtype=torch.bool)
    priors = preds.priors.reshape(images, per_image, 4)
    gts, present = padded_gt_boxes(preds.gt_instances, priors)
    if gts.shape[1] > 0:
        step = max(1, block_elements // (per_image * gts.shape[1]))
        for start in range(0, images, step):
            block = slice(start, start + step)
            region[block] = _diou_band(priors[block], gts[block],
                                       present[block], preds.level_sizes,
                                       topk, low)
    return region.reshape(-1) & preds.valid & ~preds.pos


def _diou_band(priors: Tensor, gts: Tensor, present: Tensor,
               level_sizes: Sequence[int], topk: int, low: float) -> Tensor:
    """(B, P) bool: priors (B, P, 4) whose DIoU with a present gt box of
    (B, G, 4) lies in ``[low * t, t)``, ``t`` its ATSS threshold."""
    iou = bbox_overlaps(priors, gts)
    thr = atss_thresholds(priors, gts, level_sizes, topk, iou)[:, None]
    diou = pairwise_diou(priors, gts, iou=iou)
    band = (diou >= low * thr) & (diou < thr) & present[:, None]
    return band.any(-1)


def region_mask(preds: DensePredictions, region: str, topk: int = 9,
                low: float = 0.25) -> Tensor:
    """(N,) bool mask of ``region`` (one of :data:`REGIONS`)."""
    if region == 'main':
        return preds.pos
    if region == 'valid':
        return preds.valid
    key = ('valuable_localization_region', topk, low)
    if key not in preds.cache:
        preds.cache[key] = valuable_localization_region(preds, topk, low)
    return preds.cache[key]


def assigner_topk(preds: DensePredictions, default: int = 9) -> int:
    """The student's ATSS ``topk`` (9 when its assigner has none)."""
    assigner = getattr(preds.student_head, 'assigner', None)
    return int(getattr(assigner, 'topk', default))
