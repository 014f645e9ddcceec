"""Focal and global distillation, FGD (Yang et al., CVPR 2022).

Focal part, on every level, with ``F^T`` the teacher map, ``F^S`` the
(adapted) student map, both (N, C, H, W):

- ``M``: per location the largest ``1/(h_r·w_r)`` of the ground-truth boxes
  ``r`` covering it (``h_r``, ``w_r``: the box size in feature-map cells),
  0 elsewhere; ``B = 1/N_bg`` on the ``N_bg`` locations no box covers.
- Attention of a map at temperature ``T``:
  ``A^S = H·W·softmax_HW(mean_C|F| / T)`` (spatial) and
  ``A^C = C·softmax_C(mean_HW|F| / T)`` (channel).
- ``L_focal = α Σ M·A^S_t·A^C_t·(F^T − F^S)² + β Σ B·A^S_t·A^C_t·(F^T −
  F^S)²``, weighted by the *teacher's* attention, and the attention loss
  ``L_at = γ (Σ|A^S_t − A^S_s| + Σ|A^C_t − A^C_s|)``.

Global part: a GcBlock relation module ``R(F) = F + W_2 ReLU(LN(W_1
Σ_j softmax_j(W_k F_j)·F_j))`` and ``L_global = λ Σ (R(F^T) − R(F^S))²``.

Every sum runs over the batch, channels and locations and is divided by the
batch size N; levels are summed. RetinaNet: α = 1e-3, β = 5e-4, γ = 5e-4,
λ = 5e-6; Faster R-CNN: α = 5e-5, β = 2.5e-5, γ = 5e-5, λ = 5e-7 (the
authors' configs); T = 0.5 for both.

Conventions checked against the authors' code (github.com/yzd-v/FGD):
the division by N, the teacher attentions in the focal term, a relation
block *for each side* (``R_s``, ``R_t``; the paper writes one ``R``) whose
last conv starts at zero. Two differences: a box covers the cells its area
overlaps (``floor(x1/s) .. ceil(x2/s) − 1``, as :class:`~mmkd.masks.GtBoxMask`
does; the authors' code takes ``ceil(x2/s)`` inclusive), and x indexes
columns (the authors' mask swaps the two axes).

At the digits benchmark's scale (GFL on ResNet-18 base 16/32, 128² inputs,
32/64-channel necks, 1200 iterations) FGD at the RetinaNet weights costs
0.090 AP on every one of 5 seeds, and at a tenth of those weights still
0.070 (3 seeds), while the student's own classification loss stays as high
in both. So the loss there is not the term's overall scale. The
foreground focal term alone costs as much at T = 0.5 (2 seeds), and at
T = 100, where the teacher's attentions are nearly uniform, the same term
gains 0.058 AP on every one of 5 seeds (``docs/evidence.md``): on maps of another
feature scale than COCO's RetinaNet necks, T = 0.5 concentrates the
imitation on too few cells. The defaults stay the paper's until a
temperature that does not depend on the feature scale is measured; on
other maps, try a larger ``temperature`` first.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import constant_init, kaiming_init
from mmengine.structures import BaseDataElement

from ..masks import _gt_boxes, padded_boxes
from ..registry import MODELS
from ..utils.model_kind import is_segmentor
from ..utils.validation import check_loss_weight, check_positive
from .aligned import AlignedFeatureTerm


def focal_box_masks(boxes: Sequence[torch.Tensor], size: Tuple[int, int],
                    input_shape: Tuple[int, int], device: torch.device
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """FGD's scale-weighted foreground mask and its background mask.

    A box covers the cells its area overlaps (at least one cell); a
    covered cell gets ``1/(h·w)``, ``h × w`` the box's cells on the map,
    the largest such weight where boxes overlap. Background cells
    (covered by no box) get ``1/N_bg`` of their image, so each image's
    background sums to 1 (or is empty). Built on ``device`` without host
    round-trips.

    Args:
        boxes: per image a (K, 4) tensor of x1, y1, x2, y2 boxes in the
            coordinates of the (padded) batch input.
        size: (H, W) of the feature map.
        input_shape: (H, W) of the batch input, the boxes' frame.
        device: where the masks are built.

    Returns:
        tuple: ``(fg, bg)``, float32 (N, 1, H, W) each.
    """
    return level_box_masks(
        *padded_boxes(boxes, torch.zeros((), device=device)), size,
        input_shape)


def level_box_masks(boxes: torch.Tensor, present: torch.Tensor,
                    size: Tuple[int, int], input_shape: Tuple[int, int]
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`focal_box_masks` from the batch's boxes padded once for all
    levels (:func:`~mmkd.masks.padded_boxes`): (N, K, 4) float32 boxes and
    their (N, K) bool mask of real ones."""
    h, w = size
    in_h, in_w = input_shape
    if boxes.shape[1] == 0:
        fg = boxes.new_zeros(boxes.shape[0], 1, h, w)
    else:
        c1 = (boxes[..., 0] * w / in_w).floor().clamp(min=0)
        r1 = (boxes[..., 1] * h / in_h).floor().clamp(min=0)
        c2 = torch.maximum((boxes[..., 2] * w / in_w).ceil(), c1 + 1)
        r2 = torch.maximum((boxes[..., 3] * h / in_h).ceil(), r1 + 1)
        cols = torch.arange(w, device=boxes.device)
        rows = torch.arange(h, device=boxes.device)
        in_x = (cols >= c1[..., None]) & (cols < c2[..., None])  # (N, K, W)
        in_y = (rows >= r1[..., None]) & (rows < r2[..., None])  # (N, K, H)
        cells = in_x.sum(-1) * in_y.sum(-1)  # cells of each box on the map
        scale = present / cells.clamp(min=1).float()  # padding: weight 0
        # (N, K, H, W): each box's weight on the cells it covers
        covered = in_y[..., :, None] * (in_x * scale[..., None])[..., None, :]
        fg = covered.amax(dim=1, keepdim=True)
    bg = (fg == 0).float()
    bg = bg / bg.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    return fg, bg


def fgd_attention(x: torch.Tensor, temperature: float
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """FGD's spatial and channel attention of an (N, C, H, W) map.

    Returns:
        tuple: ``H·W·softmax_HW(mean_C|x|/T)`` as (N, 1, H, W) and
        ``C·softmax_C(mean_HW|x|/T)`` as (N, C, 1, 1), in float32.
    """
    n, c, h, w = x.shape
    magnitude = x.float().abs()
    spatial = magnitude.mean(dim=1).reshape(n, -1) / temperature
    spatial = h * w * F.softmax(spatial, dim=1)
    channel = magnitude.mean(dim=(2, 3)) / temperature
    channel = c * F.softmax(channel, dim=1)
    return spatial.reshape(n, 1, h, w), channel.reshape(n, c, 1, 1)


def fgd_focal_losses(student: torch.Tensor, teacher: torch.Tensor,
                     fg: torch.Tensor, bg: torch.Tensor,
                     temperature: float = 0.5
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unweighted foreground, background and attention losses of FGD.

    Args:
        student: (N, C, H, W) student map (adapted, at the teacher's size).
        teacher: (N, C, H, W) teacher map.
        fg: (N, 1, H, W) scale-weighted foreground mask.
        bg: (N, 1, H, W) background mask.
        temperature: T of the attentions.

    Returns:
        tuple: ``Σ fg·A^S_t·A^C_t·(t − s)² / N``, the same with ``bg``, and
        ``(Σ|A^S_t − A^S_s| + Σ|A^C_t − A^C_s|) / N``, float32.
    """
    student, teacher = student.float(), teacher.float()
    return _focal_losses(student - teacher, student, teacher, fg, bg,
                         temperature)


def _focal_losses(diff: torch.Tensor, student: torch.Tensor,
                  teacher: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor,
                  temperature: float
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`fgd_focal_losses` from the float32 ``diff = s − t`` (shared
    with the global part)."""
    n, c, h, w = teacher.shape
    spatial_t, channel_t = fgd_attention(teacher, temperature)
    spatial_s, channel_s = fgd_attention(student, temperature)
    # Σ_c A^C_t·(t − s)² per location, one batched product over channels,
    # kept in float32 under autocast (squared errors overflow float16)
    with torch.autocast(diff.device.type, enabled=False):
        error = torch.bmm(channel_t.reshape(n, 1, c),
                          diff.pow(2).reshape(n, c, h * w))
    error = error.reshape(n, 1, h, w)
    error = error * spatial_t
    fg_loss = (error * fg).sum() / n
    bg_loss = (error * bg).sum() / n
    attention_loss = ((spatial_t - spatial_s).abs().sum() +
                      (channel_t - channel_s).abs().sum()) / n
    return fg_loss, bg_loss, attention_loss


class GlobalContextRelation(nn.Module):
    """The GcBlock of FGD's global part: ``x + transform(context(x))``.

    ``context`` pools the map with a softmax over H×W of a 1×1 conv
    (C → 1); ``transform`` is 1×1 conv (C → C/2), LayerNorm, ReLU, 1×1
    conv (C/2 → C), whose last conv starts at zero, so ``R(x) = x`` at
    first.

    Args:
        channels: C of the maps it is applied to.
        ratio: the bottleneck's share of the channels. Default 0.5.
    """

    def __init__(self, channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        hidden = max(int(channels * ratio), 1)
        self.context_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1))
        kaiming_init(self.context_mask, mode='fan_in')
        constant_init(self.transform[-1], val=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 1, 1) ``transform(context(x))``, what the block adds to
        every location."""
        n, c, h, w = x.shape
        weights = F.softmax(self.context_mask(x).reshape(n, 1, h * w), dim=2)
        context = torch.bmm(x.reshape(n, c, h * w), weights.transpose(1, 2))
        return self.transform(context.reshape(n, c, 1, 1))


@MODELS.register_module()
class FocalGlobalKD(AlignedFeatureTerm):
    """FGD: focal (box-, scale- and attention-weighted) and global
    (GcBlock relation) feature distillation (Yang et al., CVPR 2022).

    One term covers every level read (e.g. all FPN outputs of ``'neck'``),
    with one pair of relation blocks per level; see :mod:`mmkd.losses.fgd`
    for the formula. Detectors only: the foreground comes from the
    ground-truth boxes. The returned loss already holds α, β, γ and λ;
    ``loss_weight`` (default 1) scales all of it.

    Args:
        student: student module path (e.g. ``'neck'``).
        teacher: teacher module path.
        temperature: T of the attentions. Default 0.5.
        alpha_fg: α, foreground weight. Default 1e-3 (RetinaNet; 5e-5 for
            Faster R-CNN).
        beta_bg: β, background weight. Default 5e-4 (2.5e-5).
        gamma_attention: γ, attention loss weight. Default 5e-4 (5e-5).
        lambda_global: λ, global relation weight. Default 5e-6 (5e-7).
        adaptor: ``None`` (default; channels must match) or e.g.
            ``dict(type='ConvAdaptor')``, the authors' 1×1 conv when
            channels differ.
        loss_weight: multiplier of the whole term.
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> distill = dict(fgd=dict(
        ...     type='FocalGlobalKD', student='neck', teacher='neck',
        ...     alpha_fg=1e-3, beta_bg=5e-4, gamma_attention=5e-4,
        ...     lambda_global=5e-6))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 temperature: float = 0.5,
                 alpha_fg: float = 1e-3,
                 beta_bg: float = 5e-4,
                 gamma_attention: float = 5e-4,
                 lambda_global: float = 5e-6,
                 adaptor: Optional[dict] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, adaptor, loss_weight,
                         warmup_iters)
        self.temperature = check_positive(temperature, 'temperature')
        self.alpha_fg = check_loss_weight(alpha_fg, 'alpha_fg')
        self.beta_bg = check_loss_weight(beta_bg, 'beta_bg')
        self.gamma_attention = check_loss_weight(gamma_attention,
                                                 'gamma_attention')
        self.lambda_global = check_loss_weight(lambda_global,
                                               'lambda_global')
        self.student_relations = nn.ModuleList()
        self.teacher_relations = nn.ModuleList()

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        if student_model is not None and is_segmentor(student_model):
            raise ValueError(
                f'Term {self.name!r}: FocalGlobalKD finds the foreground '
                'from ground-truth boxes, but the student '
                f'{type(student_model).__name__} is an mmseg segmentor; '
                'use ChannelWiseKD or FeatureImitation instead.')
        super().setup(student_levels, teacher_levels, student_model)
        for t in teacher_levels:
            self.student_relations.append(GlobalContextRelation(t.shape[1]))
            self.teacher_relations.append(GlobalContextRelation(t.shape[1]))

    def box_masks(self, teacher_levels: List[torch.Tensor],
                  data_samples: Sequence[BaseDataElement]
                  ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Each level's ``(fg, bg)`` masks (:func:`level_box_masks`),
        the boxes padded once for every level."""
        boxes, present = padded_boxes(
            [_gt_boxes(sample) for sample in data_samples],
            teacher_levels[0].new_zeros((), dtype=torch.float32))
        input_shape = tuple(data_samples[0].metainfo['batch_input_shape'])
        return [level_box_masks(boxes, present, t.shape[-2:], input_shape)
                for t in teacher_levels]

    def location_weights(self, teacher_levels: List[torch.Tensor],
                         data_samples: Sequence[BaseDataElement]
                         ) -> List[torch.Tensor]:
        """The scale-weighted foreground masks (the background's weight
        is their complement, normalised per image)."""
        return [fg for fg, _ in self.box_masks(teacher_levels, data_samples)]

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        student_levels = self.align(student_levels, teacher_levels)
        masks = self.box_masks(teacher_levels, data_samples)
        total = teacher_levels[0].new_zeros((), dtype=torch.float32)
        for s, t, r_s, r_t, (fg, bg) in zip(student_levels, teacher_levels,
                                             self.student_relations,
                                             self.teacher_relations, masks):
            s, t = s.float(), t.float()
            diff = s - t
            fg_loss, bg_loss, attention_loss = _focal_losses(
                diff, s, t, fg, bg, self.temperature)
            # R_s(s) − R_t(t) = (s − t) + (residual_s − residual_t)
            residuals = r_s.residual(s) - r_t.residual(t)
            global_loss = (diff + residuals.float()).pow(2).sum()
            total = total + self.alpha_fg * fg_loss + \
                self.beta_bg * bg_loss + \
                self.gamma_attention * attention_loss + \
                self.lambda_global * global_loss / t.shape[0]
        return total

