"""The base of terms that compare student and teacher feature maps level
by level, after aligning channels (an optional adaptor) and H×W."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from ..adaptors import align_spatial
from ..registry import MODELS
from .base import DistillTerm


class AlignedFeatureTerm(DistillTerm):
    """A term over (N, C, H, W) maps, one per level, aligned to the teacher.

    At build time :meth:`setup` checks that both sides give the same number
    of 4-D levels and builds one adaptor per level from ``adaptor`` (its
    ``in_channels``/``out_channels`` inferred from the probe); with
    ``adaptor=None`` the channel counts must already match. In training
    :meth:`align` runs the adaptors and resizes the student maps to the
    teacher's H×W (bilinear).

    Args:
        student: student module path.
        teacher: teacher module path.
        adaptor: adaptor config, e.g. ``dict(type='ConvAdaptor')`` (a 1×1
            conv), or ``None`` to compare the maps as they are.
        loss_weight: multiplier.
        warmup_iters: iterations with the term switched off.
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 adaptor: Optional[dict] = None,
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(student, teacher, loss_weight, warmup_iters)
        self.adaptor_cfg = adaptor
        self.adaptors = nn.ModuleList()

    def location_weights(self, teacher_levels: List[torch.Tensor],
                         data_samples: Sequence[BaseDataElement]
                         ) -> Optional[List[torch.Tensor]]:
        """The (N, 1, H, W) weight of each location, one map a level, for
        terms that weigh locations (a ground-truth or anchor mask, FGD's
        scale-weighted foreground); ``None`` when every location weighs
        the same. Such terms use it in :meth:`compute`;
        ``tools/feature_maps.py`` draws it."""
        return None

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        self.check_level_count(student_levels, teacher_levels)
        for level, (s, t) in enumerate(zip(student_levels, teacher_levels)):
            if s.dim() != 4 or t.dim() != 4:
                tokens = ('; a 3-D (N, L, C) record is a transformer\'s '
                          'token sequence (e.g. a DETR encoder\'s memory), '
                          'which has no map layout to align: read the '
                          'model\'s neck or backbone maps instead (a DETR\'s '
                          '"neck" gives (N, C, H, W) levels)'
                          if 3 in (s.dim(), t.dim()) else '')
                raise ValueError(
                    f'Term {self.name!r} level {level}: '
                    f'{type(self).__name__} needs (N, C, H, W) maps; '
                    f'student {self.student_spec} is {tuple(s.shape)}, '
                    f'teacher {self.teacher_spec} is {tuple(t.shape)}'
                    f'{tokens}.')
            if self.adaptor_cfg is None:
                if s.shape[1] != t.shape[1]:
                    raise ValueError(
                        f'Term {self.name!r} level {level}: student '
                        f'{tuple(s.shape)} and teacher {tuple(t.shape)} '
                        'differ in channels and adaptor=None; set an '
                        'adaptor such as dict(type="ConvAdaptor").')
                continue
            cfg = dict(self.adaptor_cfg, _scope_='mmkd')
            cfg.setdefault('in_channels', s.shape[1])
            cfg.setdefault('out_channels', t.shape[1])
            if (cfg['in_channels'], cfg['out_channels']) != \
                    (s.shape[1], t.shape[1]):
                raise ValueError(
                    f'Term {self.name!r} level {level}: adaptor channels '
                    f'{cfg["in_channels"]}->{cfg["out_channels"]} do not '
                    f'map student {tuple(s.shape)} to teacher '
                    f'{tuple(t.shape)}; leave them out to infer them.')
            self.adaptors.append(MODELS.build(cfg))

    def align(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor]) -> List[torch.Tensor]:
        """The student maps through their adaptors, at the teacher's H×W.
        """
        if self.adaptors:
            student_levels = [adaptor(s) for adaptor, s in
                              zip(self.adaptors, student_levels)]
        return [align_spatial(s, t.shape[-2:])
                for s, t in zip(student_levels, teacher_levels)]
