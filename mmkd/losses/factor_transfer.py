"""Factor transfer, FT (Kim, Park and Kwak, NeurIPS 2018, "Paraphrasing
Complex Network: Network Compression via Factor Transfer").

A *paraphraser* P (a convolutional auto-encoder) is trained on the
teacher's map x by reconstruction; its encoder output is the teacher's
*factor* F_T = E(x). A *translator* T (a convolutional encoder) on the
student's map gives the student's factor F_S = T(s), which learns to
match the teacher's after both are L2-normalised per image:

    stage 1 (paraphraser):  L_rec = ‖x − P(x)‖²  (mean over elements)
    stage 2 (student):      L_FT = β · ‖F_T/‖F_T‖₂ − F_S/‖F_S‖₂‖₁

with ``‖·‖₂`` over the C·H·W of one image and the L1 distance a mean over
the batch's elements, per level (summed over levels). Defaults, from the
paper and the authors' code (Jangho-Kim/Factor-Transfer-pytorch,
``Models/FeatureProjection.py``, ``train_student.py``, ``utils.FT``):

- P: encoder 3×3 convs C → C → kC → kC, decoder 3×3 transposed convs
  kC → kC → C → C (stride 1, padding 1), each followed by a
  LeakyReLU(0.1), no batch norm; paraphrase rate k = 0.5 (``--rate``,
  factor channels ``round(k·C)``).
- T: the encoder's three convs and LeakyReLUs, C_S → C_S → kC_T → kC_T.
- β = 500 (``--beta``), p = 1 (``nn.L1Loss``, a mean), the teacher's
  factor detached.
- L_rec is the paper's squared error; the authors' CIFAR script trains
  the paraphraser with ``nn.L1Loss`` instead (``reconstruction='l1'``).
"""
import copy
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..adaptors import align_spatial
from ..registry import MODELS
from ..utils.validation import (check_iterations, check_loss_weight,
                                check_positive)
from .base import DistillTerm

RECONSTRUCTIONS = ('l2', 'l1')


def factor_channels(channels: int, rate: float) -> int:
    """``round(rate · channels)``, at least 1: the factor's channels."""
    return max(1, int(round(channels * rate)))


def _conv_stack(widths: Sequence[int], transposed: bool = False
                ) -> List[nn.Module]:
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    layers: List[nn.Module] = []
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [conv(c_in, c_out, kernel_size=3, padding=1),
                   nn.LeakyReLU(0.1)]
    return layers


class Paraphraser(nn.Module):
    """FT's paraphraser: an encoder to ``round(k·C)`` factor channels and
    a decoder back to C (3×3 convs, LeakyReLU 0.1, the authors' layout).

    Args:
        channels: C, the teacher map's channels.
        rate: k, the paraphrase rate.
    """

    def __init__(self, channels: int, rate: float = 0.5) -> None:
        super().__init__()
        factor = factor_channels(channels, rate)
        self.encoder = nn.Sequential(
            *_conv_stack((channels, channels, factor, factor)))
        self.decoder = nn.Sequential(
            *_conv_stack((factor, factor, channels, channels), True))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(factor, reconstruction)`` of the map ``x``."""
        factor = self.encoder(x)
        return factor, self.decoder(factor)


def translator(in_channels: int, out_channels: int) -> nn.Sequential:
    """FT's translator: 3×3 convs C_S → C_S → kC_T → kC_T, LeakyReLU 0.1.
    """
    return nn.Sequential(
        *_conv_stack((in_channels, in_channels, out_channels,
                      out_channels)))


def normalized_factor(factor: torch.Tensor) -> torch.Tensor:
    """Each image's factor flattened and L2-normalised, in float32."""
    return F.normalize(factor.float().flatten(1), p=2, dim=1)


def factor_transfer_loss(student_factor: torch.Tensor,
                         teacher_factor: torch.Tensor) -> torch.Tensor:
    """``mean |F_T/‖F_T‖₂ − F_S/‖F_S‖₂|`` (the authors' ``nn.L1Loss`` of
    ``utils.FT``), over the N·C·H·W elements, in float32.

    Args:
        student_factor: (N, kC, H, W) translator output.
        teacher_factor: (N, kC, H, W) paraphraser encoder output.
    """
    return F.l1_loss(normalized_factor(student_factor),
                     normalized_factor(teacher_factor))


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor,
                        kind: str = 'l2') -> torch.Tensor:
    """The paraphraser's element-mean reconstruction error, in float32:
    squared (``'l2'``, the paper) or absolute (``'l1'``, the authors'
    CIFAR script)."""
    diff = reconstruction.float() - target.float()
    return diff.pow(2).mean() if kind == 'l2' else diff.abs().mean()


@MODELS.register_module()
class FactorTransfer(DistillTerm):
    """FT: the student's translated factors match the factors a
    paraphraser extracts from the teacher (Kim et al., NeurIPS 2018).

    See :mod:`mmkd.losses.factor_transfer` for the formula and where each
    default comes from. One paraphraser and one translator per level read
    (e.g. each FPN output of ``'neck'``); the student's map is resized to
    the teacher's H×W after the translator when they differ. No ground
    truth is used: detectors and segmentors alike.

    **The two stages in one run.** The paper trains the paraphraser first,
    then the student; here both follow the iteration the distiller passes
    (the Runner's, which a resumed run restores):

    - iterations ``< paraphraser_iters`` (stage 1): the term's value is
      ``reconstruction_weight · L_rec`` on the teacher's (detached) maps,
      so only the paraphrasers learn; the factor loss is computed and
      multiplied by 0, so the student and the translators stay in the
      graph (zero gradients: DDP needs no ``find_unused_parameters``).
      The student still learns from its own task losses.
    - from ``paraphraser_iters`` on (stage 2): at the first such step the
      trained paraphrasers are copied into ``frozen_paraphrasers``
      (``requires_grad=False`` from the start, so DDP and the optimizer
      never touch them), and the teacher's factors come from that copy
      under ``no_grad``: they cannot drift. The value is
      ``loss_weight · L_FT`` (β), its gradients reach the student and the
      translators only. The trainable paraphrasers stay in the graph
      multiplied by 0 for DDP; they receive zero gradients, which weight
      decay and momentum would turn into drift, hence the copy. Turning
      ``requires_grad`` off or detaching them instead makes DDP fail
      ("Expected to have finished reduction ...") without
      ``find_unused_parameters``.

    Paraphrasers, their frozen copy, a flag saying whether the copy was
    taken, and the translators are parameters and buffers of the term: in
    the distiller's ``state_dict()``, so checkpoints carry them and a
    resumed run continues in the right stage with the trained paraphraser
    (a run resumed in stage 2 never re-copies it). They are in the
    optimizer too (the frozen copy never has a gradient, so it is never
    stepped) and out of the exported student (``tools/extract_student.py``
    keeps the student only). ``warmup_iters`` and ``enabled`` switch the
    stage-2 loss off as for any term (a warm-up counts from iteration 0,
    so one shorter than ``paraphraser_iters`` changes nothing). The logged
    ``loss_distill_<name>`` is ``L_rec`` (weighted) in stage 1 and
    ``β·L_FT`` in stage 2. With ``paraphraser_iters=0`` the factors come
    from the paraphrasers as built or loaded (e.g. ``load_from`` a
    checkpoint of a stage-1 run); a random paraphraser is not FT.

    Args:
        student: student module path (e.g. ``'neck'``).
        teacher: teacher module path.
        paraphraser_iters: N >= 0, the length of stage 1.
        rate: k > 0, the paraphrase rate; factor channels
            ``round(k·C_T)``. Default 0.5 (the paper).
        reconstruction: ``'l2'`` (the paper's ``‖x − P(x)‖²``, default)
            or ``'l1'`` (the authors' CIFAR script), element means.
        reconstruction_weight: the stage-1 multiplier of ``L_rec``.
        loss_weight: β. Default 500 (the authors' CIFAR setting).
        warmup_iters: iterations with the stage-2 loss switched off.

    Examples:
        >>> # RetinaNet neck, the paraphraser trained the first 1000
        >>> # iterations, then the student with β = 500
        >>> distill = dict(ft=dict(
        ...     type='FactorTransfer', student='neck', teacher='neck',
        ...     paraphraser_iters=1000, rate=0.5, loss_weight=500))

    Raises:
        ValueError: a bad ``paraphraser_iters``, ``rate``,
            ``reconstruction`` or weight (the message names it).
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 paraphraser_iters: int = 1000,
                 rate: float = 0.5,
                 reconstruction: str = 'l2',
                 reconstruction_weight: float = 1.0,
                 loss_weight: float = 500.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, loss_weight, warmup_iters)
        self.paraphraser_iters = check_iterations(paraphraser_iters,
                                                  'paraphraser_iters')
        self.rate = check_positive(rate, 'rate')
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(
                f'reconstruction must be one of {RECONSTRUCTIONS}, got '
                f'{reconstruction!r}.')
        self.reconstruction = reconstruction
        self.reconstruction_weight = check_loss_weight(
            reconstruction_weight, 'reconstruction_weight')
        self.paraphrasers = nn.ModuleList()
        self.frozen_paraphrasers = nn.ModuleList()
        self.translators = nn.ModuleList()
        self.register_buffer('paraphraser_frozen',
                             torch.zeros((), dtype=torch.bool))
        # host mirror of the buffer (None: read it at the next stage-2
        # step), so a step reads no tensor value
        self._frozen: Optional[bool] = None

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        self.check_level_count(student_levels, teacher_levels)
        for level, (s, t) in enumerate(zip(student_levels, teacher_levels)):
            if s.dim() != 4 or t.dim() != 4:
                raise ValueError(
                    f'Term {self.name!r} level {level}: FactorTransfer '
                    f'needs (N, C, H, W) maps; student {self.student_spec} '
                    f'is {tuple(s.shape)}, teacher {self.teacher_spec} is '
                    f'{tuple(t.shape)}.')
            paraphraser = Paraphraser(t.shape[1], self.rate)
            frozen = copy.deepcopy(paraphraser).requires_grad_(False)
            self.paraphrasers.append(paraphraser)
            self.frozen_paraphrasers.append(frozen)
            self.translators.append(translator(
                s.shape[1], factor_channels(t.shape[1], self.rate)))

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._frozen = None

    @torch.no_grad()
    def freeze_paraphrasers(self) -> None:
        """Copy the trained paraphrasers into ``frozen_paraphrasers`` (the
        stage switch; done once, the flag is saved with them)."""
        for source, target in zip(self.paraphrasers,
                                  self.frozen_paraphrasers):
            for p, q in zip(source.parameters(), target.parameters()):
                q.copy_(p)
        self.paraphraser_frozen.fill_(True)
        self._frozen = True

    def _thaw(self) -> None:
        """Back in stage 1 (a run restarted from iteration 0 on a stage-2
        checkpoint's weights): the paraphrasers train again and are
        copied anew at the switch."""
        self.paraphraser_frozen.fill_(False)
        self._frozen = False

    def stage_losses(self, student_levels: List[torch.Tensor],
                     teacher_levels: List[torch.Tensor], paraphrasing: bool
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(L_rec, L_FT)`` summed over levels, both unweighted.

        Args:
            paraphrasing: stage 1: ``L_rec`` trains the paraphrasers and
                the teacher's factors are their (detached) encoder
                outputs. Otherwise the factors come from the frozen copy
                under ``no_grad`` and ``L_rec`` is a zero connected to the
                trainable paraphrasers (for DDP).
        """
        rec = teacher_levels[0].new_zeros((), dtype=torch.float32)
        factor_loss = rec.clone()
        for level, (s, t) in enumerate(zip(student_levels, teacher_levels)):
            t = t.detach()
            if paraphrasing:
                factor_t, rebuilt = self.paraphrasers[level](t)
                rec = rec + reconstruction_loss(rebuilt, t,
                                                self.reconstruction)
                factor_t = factor_t.detach()
            else:
                with torch.no_grad():
                    factor_t = self.frozen_paraphrasers[level].encoder(t)
                for p in self.paraphrasers[level].parameters():
                    rec = rec + p.sum().float() * 0.0
            factor_s = align_spatial(self.translators[level](s),
                                     factor_t.shape[-2:])
            factor_loss = factor_loss + factor_transfer_loss(
                factor_s, factor_t)
        return rec, factor_loss

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        """Both stages' losses, unweighted, summed (the stage-1 path: the
        build-time dry run exercises every module); training goes through
        :meth:`forward`."""
        rec, factor_loss = self.stage_losses(student_levels, teacher_levels,
                                             paraphrasing=True)
        return rec + factor_loss

    def forward(self, student_value, teacher_value,
                data_samples: Sequence[BaseDataElement],
                iteration: int) -> torch.Tensor:
        """Stage 1: ``reconstruction_weight · L_rec + 0 · L_FT``; stage 2:
        ``β · L_FT + 0 · (trainable paraphrasers)`` (0 while warming up
        or switched off)."""
        student_levels = self.parse_record(student_value, 'student')
        teacher_levels = self.read_teacher(teacher_value)
        paraphrasing = iteration < self.paraphraser_iters
        if paraphrasing:
            if self._frozen is not False:
                self._thaw()
        elif not self._frozen:
            if self._frozen is None:
                self._frozen = bool(self.paraphraser_frozen)
            if not self._frozen:
                self.freeze_paraphrasers()
        rec, factor_loss = self.stage_losses(student_levels, teacher_levels,
                                             paraphrasing)
        if paraphrasing:
            return rec * self.reconstruction_weight + factor_loss * 0.0
        off = not self.enabled or iteration < self.warmup_iters
        return rec + factor_loss * (0.0 if off else self.loss_weight)
