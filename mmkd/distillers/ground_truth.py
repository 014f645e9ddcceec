"""Which ground truth a model's training pipeline gives it, read from the
built model.

The build-time probe must give a model what its own data pipeline would:
an instance mask given to a box detector is not harmless (RTMDet's
``DynamicSoftLabelAssigner`` takes the centre of mass of any
``gt_instances.masks`` and expects tensors there, where the pipeline
of a mask model gives ``BitmapMasks``). The user's dataset config is not
consulted: the student config is often only the model, and the heads are
what decide what the loss reads.
"""
from dataclasses import dataclass

import torch.nn as nn


@dataclass(frozen=True)
class DetectionGroundTruth:
    """What a detector's loss reads besides boxes and labels.

    Attributes:
        instance_masks: ``gt_instances.masks`` (``BitmapMasks``), as
            ``LoadAnnotations(with_mask=True)`` gives them.
        semantic_map: ``gt_sem_seg.sem_seg`` (``(1, H, W)``, 255 void), as
            ``LoadAnnotations(with_seg=True)`` or the panoptic loader
            gives it.
        proposals: ``proposals`` (boxes and scores), as ``LoadProposals``
            gives them to a two-stage detector without an RPN.
    """
    instance_masks: bool = False
    semantic_map: bool = False
    proposals: bool = False


def _has_mask_branch(model: nn.Module) -> bool:
    """Mask R-CNN and every R-CNN with a mask head (Cascade, HTC, SCNet,
    PointRend, MS R-CNN, QueryInst, Panoptic FPN) and single-stage
    instance segmentors (SOLO, CondInst, YOLACT, ...) say so through
    mmdet's ``with_mask``; heads that train masks inside a box detector
    (RTMDet-Ins) or a query detector (MaskFormer, Mask2Former) build a
    ``loss_mask``."""
    if getattr(model, 'with_mask', False):
        return True
    return any(getattr(module, 'loss_mask', None) is not None
               for module in model.modules())


def _has_semantic_branch(model: nn.Module) -> bool:
    """Panoptic two-stage segmentors (Panoptic FPN) say so through
    ``with_semantic_head``, HTC and SCNet through their RoI head's
    ``with_semantic``; MaskFormer-style heads read the semantic map for
    their stuff classes when they have any (panoptic, not instance,
    configs)."""
    roi_head = getattr(model, 'roi_head', None)
    if getattr(model, 'with_semantic_head', False) or \
            getattr(roi_head, 'with_semantic', False):
        return True
    return any(getattr(module, 'loss_mask', None) is not None
               and getattr(module, 'num_stuff_classes', 0) > 0
               for module in model.modules())


def _needs_proposals(model: nn.Module) -> bool:
    """A two-stage detector without an RPN (Fast R-CNN) trains on
    precomputed proposals."""
    from mmdet.models.detectors import TwoStageDetector
    return isinstance(model, TwoStageDetector) and not model.with_rpn


def detection_ground_truth(model: nn.Module) -> DetectionGroundTruth:
    """What ``model``'s training pipeline gives it besides boxes and
    labels, inferred from its heads.

    Args:
        model: a built mmdet detector.

    Returns:
        DetectionGroundTruth: which of instance masks, semantic map and
        proposals the model's loss reads.

    Examples:
        >>> # RTMDet: boxes only; Mask R-CNN: boxes and masks
        >>> detection_ground_truth(mask_rcnn).instance_masks
        True
    """
    return DetectionGroundTruth(
        instance_masks=_has_mask_branch(model),
        semantic_map=_has_semantic_branch(model),
        proposals=_needs_proposals(model))


def reads_depth_maps(model: nn.Module) -> bool:
    """Whether ``model`` is an mmseg depth estimator, whose pipeline gives
    ``gt_depth_map`` instead of a label map."""
    try:
        from mmseg.models.segmentors import DepthEstimator
    except ImportError:  # pragma: no cover - mmseg not installed
        return False
    return isinstance(model, DepthEstimator)
