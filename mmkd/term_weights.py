"""Where each distillation term looks: the locations it weighs in one step.

Two kinds of term weigh some locations more than others:

- feature terms with a location weight
  (:meth:`~mmkd.losses.aligned.AlignedFeatureTerm.location_weights`): a
  ground-truth box mask (:class:`~mmkd.masks.GtBoxMask`), FGFI's
  anchor-IoU mask (:class:`~mmkd.masks.FGFIMask`, Wang et al., CVPR 2019),
  FGD's scale-weighted foreground (Yang et al., CVPR 2022);
- dense-head terms that read a region of priors
  (:meth:`~mmkd.losses.dense_head_term.DenseHeadTerm.prior_region`): LD's
  main and valuable localization regions (Zheng et al., CVPR 2022), the
  region of class KD and decoupled KD.

:func:`term_weight_maps` runs one loss step of a distiller and returns,
per such term, one ``(H, W)`` map per level for the first image: the
weights the term's loss used, taken from the term's own methods (the same
calls its loss makes), so a picture shows what training weighs. Terms
that weigh every location alike are left out.

Examples:
    >>> maps = term_weight_maps(distiller, inputs, data_samples)
    >>> {name: [tuple(m.shape) for m in levels]
    ...  for name, levels in maps.items()}
    {'fgfi': [(64, 64), (32, 32), (16, 16)], 'ld_vlr': [...]}
"""
from typing import Any, Dict, List, Sequence

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from .losses.aligned import AlignedFeatureTerm
from .losses.dense_head_term import DenseHeadTerm


def prior_region_maps(term: DenseHeadTerm, student_value: Any,
                      teacher_value: Any) -> List[torch.Tensor]:
    """The first image's priors in ``term``'s region, one ``(H, W)``
    float map per FPN level (1 where any anchor of the location is in the
    region); empty when the term reads every prior."""
    calls = term.parse_record(student_value, 'student')
    preds = term.collect(calls, term.read_teacher(teacher_value))
    region = term.prior_region(preds)
    if region is None:
        return []
    per_image = sum(preds.level_sizes)
    first = region.reshape(preds.num_images, per_image)[0]
    cls_scores = calls.last('forward').result[0]
    return [part.reshape(*score.shape[-2:], -1).any(-1).float()
            for part, score in zip(first.split(preds.level_sizes),
                                   cls_scores)]


def location_weight_maps(term: AlignedFeatureTerm, teacher_value: Any,
                         data_samples: Sequence[BaseDataElement]
                         ) -> List[torch.Tensor]:
    """The first image's location weights of a feature term, one
    ``(H, W)`` map per level; empty when every location weighs alike."""
    weights = term.location_weights(term.read_teacher(teacher_value),
                                    data_samples)
    return [w[0, 0].float() for w in weights or []]


@torch.no_grad()
def term_weight_maps(distiller: nn.Module, inputs: torch.Tensor,
                     data_samples: List[BaseDataElement]
                     ) -> Dict[str, List[torch.Tensor]]:
    """Run one loss step of ``distiller`` and return, for each term that
    weighs locations, its per-level ``(H, W)`` maps of the first image
    (in the order of the terms in the config).

    Args:
        distiller: a built :class:`~mmkd.distillers.Distiller`.
        inputs: the preprocessed batch, as its ``loss`` takes it.
        data_samples: the batch's samples with their ground truth.
    """
    maps: Dict[str, List[torch.Tensor]] = {}

    def capture(name: str, term: nn.Module, args: tuple, _) -> None:
        student_value, teacher_value, samples = args[:3]
        if isinstance(term, DenseHeadTerm):
            levels = prior_region_maps(term, student_value, teacher_value)
        elif isinstance(term, AlignedFeatureTerm):
            levels = location_weight_maps(term, teacher_value, samples)
        else:
            levels = []
        if levels:
            maps[name] = [level.cpu() for level in levels]

    handles = [term.register_forward_hook(
        lambda mod, args, out, name=name: capture(name, mod, args, out))
        for name, term in distiller.distill_terms.items()]
    try:
        distiller.loss(inputs, data_samples)
    finally:
        for handle in handles:
            handle.remove()
    return {name: maps[name] for name in distiller.distill_terms
            if name in maps}
