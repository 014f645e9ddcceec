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
  this region is the one thing recomputed (on the device, per image, no
  host round trip).
"""
from typing import Optional, Sequence

import torch
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from torch import Tensor

from .predictions import DensePredictions

REGIONS = ('main', 'valid', 'valuable')


def check_region(region: str, term: str = '') -> str:
    if region not in REGIONS:
        raise ValueError(f'{term}region must be one of {REGIONS}, got '
                         f'{region!r}.')
    return region


def pairwise_diou(boxes: Tensor, gts: Tensor, eps: float = 1e-6,
                  iou: Optional[Tensor] = None) -> Tensor:
    """(P, G) distance-IoU: IoU minus the squared centre distance over the
    squared diagonal of the smallest enclosing box (``iou``: the (P, G)
    IoU when already computed)."""
    if iou is None:
        iou = bbox_overlaps(boxes, gts)
    centre_b = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
    centre_g = (gts[None, :, :2] + gts[None, :, 2:]) / 2
    rho2 = ((centre_b - centre_g)**2).sum(-1)
    lt = torch.min(boxes[:, None, :2], gts[None, :, :2])
    rb = torch.max(boxes[:, None, 2:], gts[None, :, 2:])
    c2 = ((rb - lt)**2).sum(-1) + eps
    return iou - rho2 / c2


def atss_thresholds(priors: Tensor, gts: Tensor, level_sizes: Sequence[int],
                    topk: int, iou: Optional[Tensor] = None) -> Tensor:
    """(G,) mean + std of the IoU of each gt box's ATSS candidates, as
    mmdet's ``ATSSAssigner`` computes them (unbiased std); ``iou``: the
    (P, G) IoU when already computed."""
    centre_p = (priors[:, :2] + priors[:, 2:]) / 2
    centre_g = (gts[:, :2] + gts[:, 2:]) / 2
    distances = torch.cdist(centre_p, centre_g)
    candidates, start = [], 0
    for size in level_sizes:
        k = min(topk, size)
        idx = distances[start:start + size].topk(k, dim=0, largest=False)[1]
        candidates.append(idx + start)
        start += size
    candidates = torch.cat(candidates)
    if iou is None:
        iou = bbox_overlaps(priors, gts)
    overlaps = iou.gather(0, candidates)
    return overlaps.mean(0) + overlaps.std(0)


def valuable_localization_region(preds: DensePredictions, topk: int = 9,
                                 low: float = 0.25) -> Tensor:
    """(N,) bool: LD's valuable localization region (module docstring)."""
    per_image = preds.priors.shape[0] // preds.num_images
    priors = preds.priors.reshape(preds.num_images, per_image, 4)
    region = []
    for image, gt in enumerate(preds.gt_instances):
        gts = get_box_tensor(gt.bboxes).to(priors.dtype)
        if gts.shape[0] == 0:
            region.append(priors.new_zeros(per_image, dtype=torch.bool))
            continue
        iou = bbox_overlaps(priors[image], gts)
        thr = atss_thresholds(priors[image], gts, preds.level_sizes, topk,
                              iou)
        diou = pairwise_diou(priors[image], gts, iou=iou)
        region.append(((diou >= low * thr) & (diou < thr)).any(1))
    return torch.cat(region) & preds.valid & ~preds.pos


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
