"""Holistic adversarial distillation (Liu et al., Structured Knowledge
Distillation for Semantic Segmentation, CVPR 2019), trained WGAN-GP style
(Gulrajani et al., NeurIPS 2017).

A discriminator D scores (image, softmax score map) pairs; the teacher's
maps are real, the student's fake. With ``Q̂ = αQ_t + (1 − α)Q_s``,
``α ~ U(0, 1)`` per image:

    D step:       λ_d · (−E D(Q_t) + E D(Q_s) + 10 · E(‖∇_Q̂ D(Q̂)‖₂ − 1)²)
    student step: −λ_d · E D(Q_s)

with λ_d = 0.1. The discriminator has its own optimizer (SGD, lr 4e-4,
poly schedule in SKD): see
:class:`mmkd.optim.AdversarialOptimWrapperConstructor` and
:meth:`mmkd.Distiller.train_step`, which updates the discriminator then
the student with one forward pass of both models.
"""
import contextlib
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..adaptors import align_spatial
from ..registry import MODELS
from ..utils.validation import check_iterations, check_loss_weight
from .base import DistillTerm


def condition_on_images(images: torch.Tensor,
                        maps: torch.Tensor) -> torch.Tensor:
    """``cat(images resized to the maps' H×W, maps)`` along channels."""
    images = F.interpolate(images.float(), size=maps.shape[-2:],
                           mode='bilinear', align_corners=False)
    return torch.cat([images, maps], dim=1)


def gradient_penalty(discriminator: nn.Module, images: torch.Tensor,
                     interpolated: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's ``E(‖∇_Q̂ D(image, Q̂)‖₂ − 1)²`` over the images of a
    batch, the norm taken over the score map's (K, H, W) entries.

    Args:
        discriminator: maps (N, 3 + K, H, W) inputs to (N,) scores.
        images: (N, 3, H_i, W_i) images (resized to the maps' H×W).
        interpolated: (N, K, H, W) maps ``Q̂``, detached from any graph.
    """
    interpolated = interpolated.detach().requires_grad_(True)
    scores = discriminator(condition_on_images(images, interpolated))
    grad, = torch.autograd.grad(scores.sum(), interpolated,
                                create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def wgan_gp_discriminator_loss(discriminator: nn.Module,
                               images: torch.Tensor, real: torch.Tensor,
                               fake: torch.Tensor, alpha: torch.Tensor,
                               gp_weight: float = 10.0) -> torch.Tensor:
    """``−E D(real) + E D(fake) + gp_weight · E(‖∇D(Q̂)‖ − 1)²`` with
    ``Q̂ = α·real + (1 − α)·fake`` (``alpha`` of shape (N,)).

    Real, fake and interpolated maps go through D as one batch (one
    spectral-norm power iteration a step)."""
    real, fake = real.detach().float(), fake.detach().float()
    n = real.shape[0]
    alpha = alpha.to(real).view(n, 1, 1, 1)
    interpolated = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    maps = torch.cat([real, fake, interpolated])
    scores = discriminator(condition_on_images(images.repeat(3, 1, 1, 1),
                                               maps))
    grad, = torch.autograd.grad(scores[2 * n:].sum(), interpolated,
                                create_graph=True)
    penalty = (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
    return -scores[:n].mean() + scores[n:2 * n].mean() + gp_weight * penalty


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` out of autograd inside the block (the
    student's adversarial loss must not leave gradients in D)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class AdversarialTerm(DistillTerm):
    """A term that owns a discriminator trained by its own optimizer.

    The distiller gives it the batch's images (:meth:`set_inputs`) before
    each step; :meth:`compute` returns the student's adversarial loss and
    keeps detached maps for :meth:`discriminator_loss`. In
    :meth:`~mmkd.Distiller.train_step` the student's loss is computed
    after the discriminator's update (:meth:`deferred`,
    :meth:`student_loss`).

    Args:
        *args: :class:`~mmkd.losses.DistillTerm`'s arguments.
        discriminator_steps: discriminator updates a student update, on
            the same batch; >= 1.
        **kwargs: :class:`~mmkd.losses.DistillTerm`'s arguments.
    """

    discriminator: nn.Module

    def __init__(self, *args, discriminator_steps: int = 1,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.discriminator_steps = check_iterations(discriminator_steps,
                                                    'discriminator_steps')
        if self.discriminator_steps < 1:
            raise ValueError('discriminator_steps must be >= 1, got '
                             f'{discriminator_steps!r}.')
        self._images: Optional[torch.Tensor] = None
        self._maps: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._deferred = False

    def set_inputs(self, inputs: torch.Tensor) -> None:
        """The (N, 3, H, W) images of the current batch."""
        self._images = inputs

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """:meth:`compute` only keeps the maps and returns a zero
        placeholder; :meth:`student_loss` computes the loss later."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False

    def weight_at(self, iteration: int) -> float:
        """The student loss's weight (0 during warm-up)."""
        return 0.0 if iteration < self.warmup_iters else self.loss_weight

    def student_loss(self) -> torch.Tensor:
        """The student's unweighted adversarial loss on the kept maps."""
        raise NotImplementedError

    def discriminator_loss(self) -> torch.Tensor:
        """The discriminator's weighted loss on the kept maps, detached
        from the student."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop the images and maps kept from the last step."""
        self._images = self._maps = None


@MODELS.register_module()
class HolisticAdversarialKD(AdversarialTerm):
    """SKD's holistic term: a WGAN-GP discriminator on (image, softmax map).

    Reads class score maps (e.g. ``decode_head.conv_seg``) in both models;
    the student's is resized to the teacher's H×W, softmax is taken over
    classes, and the images (the student's normalised inputs) are resized
    to the maps' H×W and concatenated as the condition. D runs in float32,
    also under ``--amp`` (the gradient penalty differentiates twice).

    The term's ``loss_weight`` is λ_d: it weights the student's loss
    ``−E D(Q_s)`` and the discriminator's. Train with
    ``optim_wrapper=dict(constructor='mmkd.AdversarialOptimWrapperConstructor',
    student=..., discriminator=...)``.

    Args:
        student: student module path giving (N, K, H, W) logits.
        teacher: teacher module path giving (N, K, H, W) logits.
        discriminator: discriminator config; ``in_channels`` (3 + K) is
            inferred. Default ``dict(type='ScoreMapDiscriminator')``.
        gp_weight: weight of the gradient penalty; WGAN-GP and SKD 10.
        discriminator_steps: discriminator updates a student update, on
            the same batch. Default 1.
        loss_weight: λ_d; SKD 0.1.
        warmup_iters: iterations with the student's adversarial loss off
            (the discriminator still trains).

    At small scale: on the digits seg suite at 3000 iterations the term
    alone does not lift the student (docs/evidence.md). The critic's loss
    (``loss_discriminator_<name>``: ``D(student) − D(teacher)`` plus its
    penalty), averaged over the last third of training, is about 0.001
    (``tools/benchmark/record_losses.py`` on the run records): the critic
    no longer tells the student's nearly one-hot maps from the teacher's,
    so ``−E D(Q_s)`` pushes the student along a critic gradient that does
    not point to the teacher.

    Examples:
        >>> distill = dict(holistic=dict(
        ...     type='HolisticAdversarialKD',
        ...     student='decode_head.conv_seg',
        ...     teacher='decode_head.conv_seg', loss_weight=0.1))
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 discriminator: Optional[dict] = None,
                 gp_weight: float = 10.0,
                 discriminator_steps: int = 1,
                 loss_weight: float = 0.1,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, loss_weight, warmup_iters,
                         discriminator_steps=discriminator_steps)
        self.discriminator_cfg = dict(
            type='ScoreMapDiscriminator') if discriminator is None else \
            dict(discriminator)
        self.gp_weight = check_loss_weight(gp_weight, 'gp_weight')

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        if len(student_levels) != 1 or len(teacher_levels) != 1:
            raise ValueError(
                f'Term {self.name!r}: the holistic term reads one score map '
                f'a side; student {self.student_spec} gives '
                f'{len(student_levels)}, teacher {self.teacher_spec} gives '
                f'{len(teacher_levels)}. Read the decode head\'s conv_seg.')
        s, t = student_levels[0], teacher_levels[0]
        if s.dim() != 4 or t.dim() != 4 or s.shape[1] != t.shape[1]:
            raise ValueError(
                f'Term {self.name!r}: the holistic term needs (N, K, H, W) '
                f'score maps with the same K classes; student '
                f'{self.student_spec} is {tuple(s.shape)}, teacher '
                f'{self.teacher_spec} is {tuple(t.shape)}.')
        if self._images is None:
            raise RuntimeError(f'Term {self.name!r}: no images given; the '
                               'distiller calls set_inputs() first.')
        cfg = dict(self.discriminator_cfg, _scope_='mmkd')
        cfg.setdefault('in_channels', self._images.shape[1] + t.shape[1])
        try:
            self.discriminator = MODELS.build(cfg).to(t.device)
        except (TypeError, KeyError, ValueError) as err:
            raise type(err)(f'Term {self.name!r}: discriminator '
                            f'{self.discriminator_cfg}: {err}') from err

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        t = teacher_levels[0]
        s = align_spatial(student_levels[0].float(), t.shape[-2:])
        if self._images is None:
            raise RuntimeError(f'Term {self.name!r}: no images given; the '
                               'distiller calls set_inputs() first.')
        self._maps = (F.softmax(s, dim=1), F.softmax(t.float(), dim=1))
        if self._deferred:
            return s.new_zeros(())
        return self.student_loss()

    def _require_maps(self) -> Tuple[torch.Tensor, torch.Tensor]:
        if self._maps is None or self._images is None:
            raise RuntimeError(f'Term {self.name!r}: no maps kept; run the '
                               'distiller\'s loss() on a batch first.')
        return self._maps

    def student_loss(self) -> torch.Tensor:
        """``−E D(Q_s)`` (unweighted), D frozen, in float32."""
        student, _ = self._require_maps()
        with frozen(self.discriminator), torch.autocast(
                student.device.type, enabled=False):
            scores = self.discriminator(
                condition_on_images(self._images, student))
        return -scores.mean()

    def discriminator_loss(self) -> torch.Tensor:
        """``λ_d · (−E D(Q_t) + E D(Q_s) + gp_weight · GP)`` on the kept
        maps (detached), in float32, α drawn anew."""
        student, teacher = self._require_maps()
        alpha = torch.rand(teacher.shape[0], device=teacher.device)
        with torch.autocast(teacher.device.type, enabled=False):
            loss = wgan_gp_discriminator_loss(
                self.discriminator, self._images.detach(), teacher,
                student, alpha, self.gp_weight)
        return self.loss_weight * loss
