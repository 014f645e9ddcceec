"""The build-time probe: a dummy batch for detectors and segmentors, where
to run it, and the mode modules run in while probed."""
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..utils.model_kind import is_detector, is_segmentor
from .ground_truth import (DetectionGroundTruth, detection_ground_truth,
                           reads_depth_maps)


def is_batch_norm(module: nn.Module) -> bool:
    """torch's batch norms (SyncBatchNorm included) and look-alikes such as
    mmcv's ``MMSyncBN``."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm) or \
        'BatchNorm' in type(module).__name__


#: a parameter holding a value beyond this (or NaN/inf) before
#: ``init_weights`` holds uninitialised memory: no constructor draws one
UNINITIALISED_MAGNITUDE = 1e3


def holds_uninitialised_memory(param: torch.Tensor) -> bool:
    """A floating parameter with a NaN, an inf or a value beyond
    :data:`UNINITIALISED_MAGNITUDE`: memory no initialiser wrote."""
    if not param.is_floating_point() or param.numel() == 0:
        return False
    return not bool(torch.isfinite(param).all()) or \
        bool(param.abs().max() > UNINITIALISED_MAGNITUDE)


@contextmanager
def uninitialised_parameters_zeroed(module: nn.Module) -> Iterator[None]:
    """Zero, for the duration, the parameters that hold uninitialised
    memory; restore them exactly afterwards.

    The probe runs at build time, before the Runner's ``init_weights``.
    Some modules leave a parameter to ``init_weights`` and allocate it
    with ``torch.Tensor(*shape)`` (mmdet's Deformable DETR and DINO
    ``level_embed``): until then it holds whatever the memory held, now
    and then values near 1e33 or NaN, which overflow the encoder and make
    the Hungarian matcher fail on a NaN cost
    (:func:`holds_uninitialised_memory` tells such memory); the probe's
    results (the calls recorded, the shapes) do not depend on it being
    zero.
    """
    saved = []
    with torch.no_grad():
        for param in module.parameters():
            if holds_uninitialised_memory(param):
                saved.append((param, param.detach().clone()))
                param.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for param, value in saved:
                param.copy_(value)


@contextmanager
def probing(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in train mode, leaving no trace of the probe.

    Train mode, because some heads compute their losses only in training
    (e.g. DINO's denoising queries). Batch norms run in eval mode: they
    neither update their statistics nor synchronise (``SyncBN`` on CPU
    under an initialised process group would fail). Parameters that hold
    uninitialised memory are zero meanwhile
    (:func:`uninitialised_parameters_zeroed`). The training flag, every
    buffer and every parameter are restored afterwards.
    """
    buffers = [(b, b.clone()) for b in module.buffers()]
    was_training = module.training
    module.train()
    for child in module.modules():
        if is_batch_norm(child):
            child.eval()
    try:
        with uninitialised_parameters_zeroed(module):
            yield
    finally:
        module.train(was_training)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


def probe_device() -> torch.device:
    """Where the build-time probe runs.

    The CPU, unless a process group is initialised whose backend has no CPU
    collectives (NCCL, as ``tools/dist_train.sh`` starts it): the models
    are built on the CPU, and heads that average across ranks in their
    losses (mmdet's ``reduce_mean`` in GFL, ATSS, FCOS, ...) would then
    all-reduce CPU tensors through NCCL and fail. Then the probe runs on the
    current GPU, as training will.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return torch.device('cpu')
    backend = str(dist.get_backend()).lower()
    if 'gloo' in backend or 'mpi' in backend or \
            not torch.cuda.is_available():
        return torch.device('cpu')
    return torch.device('cuda', torch.cuda.current_device())


def _detection_samples(size: Tuple[int, int], batch_size: int, meta: dict,
                       truth: DetectionGroundTruth
                       ) -> List[BaseDataElement]:
    """One centred box of class 0 per image, and what else ``truth`` says
    the model's pipeline gives it: the box's instance mask, a semantic map
    (class 0 in the box, 255 void elsewhere), proposals around the box."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
    h, w = size
    x1, y1, x2, y2 = w // 4, h // 4, 3 * w // 4, 3 * h // 4
    box = torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32)
    inside = torch.zeros(1, h, w, dtype=torch.bool)
    inside[:, y1:y2, x1:x2] = True
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(bboxes=box.clone(),
                                           labels=torch.tensor([0]))
        if truth.instance_masks:
            sample.gt_instances.masks = BitmapMasks(
                inside.to(torch.uint8).numpy(), h, w)
        if truth.semantic_map:
            sample.gt_sem_seg = PixelData(sem_seg=torch.where(
                inside, 0, 255).long())
        if truth.proposals:
            sample.proposals = _proposals_around(box)
        samples.append(sample)
    return samples


def _proposals_around(box: torch.Tensor) -> BaseDataElement:
    """The box and four copies shifted by a quarter of its size (inside
    the image: the box spans its middle half), all with score 1."""
    from mmengine.structures import InstanceData
    size = box[0, 2:] - box[0, :2]
    shifts = torch.tensor([[0., 0.], [1., 0.], [-1., 0.], [0., 1.],
                           [0., -1.]]) * size / 4
    bboxes = box + shifts.repeat(1, 2)
    return InstanceData(bboxes=bboxes, scores=torch.ones(len(bboxes)))


def _segmentation_samples(size: Tuple[int, int], batch_size: int,
                          meta: dict, depth: bool
                          ) -> List[BaseDataElement]:
    """An all-class-0 label map per image or, for depth estimators, a
    depth map (1 in the centred box, 2 around it)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = size
    samples = []
    for _ in range(batch_size):
        sample = SegDataSample(metainfo=meta)
        if depth:
            depth_map = torch.full((1, h, w), 2.)
            depth_map[:, h // 4:3 * h // 4, w // 4:3 * w // 4] = 1.
            sample.gt_depth_map = PixelData(data=depth_map)
        else:
            sample.gt_sem_seg = PixelData(
                data=torch.zeros(1, h, w, dtype=torch.long))
        samples.append(sample)
    return samples


def make_probe_batch(model: nn.Module, size: Tuple[int, int],
                     batch_size: int = 2,
                     device: torch.device = torch.device('cpu')
                     ) -> Tuple[torch.Tensor, List[BaseDataElement]]:
    """Zero inputs and data samples with ground truth for ``model``.

    Detectors get one gt box a image, and only the other ground truth
    their own training pipeline would give them, as
    :func:`~mmkd.distillers.ground_truth.detection_ground_truth` infers
    it from the heads: an instance mask for models with a mask branch
    (Mask R-CNN, RTMDet-Ins, SOLO, Mask2Former, ...), a semantic map for
    semantic and panoptic heads, proposals for R-CNNs without an RPN.
    Box detectors get boxes and labels only (RTMDet's assigner, for one,
    reads masks whenever they are present). Segmentors get an
    all-class-0 label map, depth estimators a depth map instead.

    Args:
        model: an mmdet detector or an mmseg segmentor.
        size: (H, W) of the dummy input.
        batch_size: images in the batch (2 keeps batch norm well defined).
        device: where the inputs and the ground truth are put.

    Raises:
        TypeError: ``model`` is neither a detector nor a segmentor.
    """
    h, w = size
    meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
    inputs = torch.zeros(batch_size, 3, h, w, device=device)
    if is_detector(model):
        samples = _detection_samples(size, batch_size, meta,
                                     detection_ground_truth(model))
    elif is_segmentor(model):
        samples = _segmentation_samples(size, batch_size, meta,
                                        reads_depth_maps(model))
    else:
        raise TypeError(
            f'{type(model).__name__} is neither an mmdet detector nor an '
            'mmseg segmentor; mmkd distils models of those two kinds.')
    return inputs, [sample.to(device) for sample in samples]
