"""Tell mmdet detectors from mmseg segmentors without importing either
package eagerly."""
import torch.nn as nn


def is_detector(model: nn.Module) -> bool:
    """Whether ``model`` is an mmdet detector (``BaseDetector``)."""
    try:
        from mmdet.models.detectors import BaseDetector
    except ImportError:  # pragma: no cover - mmdet not installed
        return False
    return isinstance(model, BaseDetector)


def is_segmentor(model: nn.Module) -> bool:
    """Whether ``model`` is an mmseg segmentor (``BaseSegmentor``)."""
    try:
        from mmseg.models.segmentors import BaseSegmentor
    except ImportError:  # pragma: no cover - mmseg not installed
        return False
    return isinstance(model, BaseSegmentor)
