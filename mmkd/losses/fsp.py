"""Flow of solution procedure, FSP (Yim et al., A Gift from Knowledge
Distillation: Fast Optimization, Network Minimization and Transfer
Learning, CVPR 2017).

The FSP matrix of two feature maps ``F1`` (N, C1, H, W) and ``F2`` (N, C2,
H, W) of one model is their Gram matrix over locations,

    G_ij = Σ_{s,t} F1_{i,s,t} · F2_{j,s,t} / (H·W),   (N, C1, C2),

the "flow" from one layer to the next. The student's matrices are pulled
towards the teacher's, pair by pair:

    L_FSP = Σ_pairs λ_p · mean_{n,i,j} (G^T_p − G^S_p)²

The paper writes ``1/N Σ_x Σ_i λ_i ‖G_i^T − G_i^S‖²₂`` (a sum over the
C1×C2 entries) with the same λ for every pair; we take the *mean* over
the entries, as RepDistiller's FSP (HobbitLong/RepDistiller) and
REFERENCE.md do, which is the paper's loss divided by C1·C2 (absorbed in
the weight). The paper pairs the input and output of each group of
residual blocks (same H×W); when the two maps of a pair differ in H×W the
larger is average-pooled to the smaller (``adaptive_avg_pool2d``), as
RepDistiller does between consecutive stages.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from ..recorders import MethodCalls
from ..registry import MODELS
from ..utils.validation import check_loss_weight
from .base import DistillTerm, as_levels

Places = Union[str, dict, Sequence[str]]


def fsp_matrix(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The FSP matrix ``F1ᵀF2 / (H·W)`` of two maps of one model.

    Args:
        first: (N, C1, H1, W1) map.
        second: (N, C2, H2, W2) map of the same batch. When the sizes
            differ, both are average-pooled to (min(H1, H2), min(W1, W2)).

    Returns:
        torch.Tensor: (N, C1, C2), float32 (also under autocast).
    """
    size = (min(first.shape[-2], second.shape[-2]),
            min(first.shape[-1], second.shape[-1]))
    with torch.autocast(first.device.type, enabled=False):
        first, second = first.float(), second.float()
        if tuple(first.shape[-2:]) != size:
            first = F.adaptive_avg_pool2d(first, size)
        if tuple(second.shape[-2:]) != size:
            second = F.adaptive_avg_pool2d(second, size)
        return torch.bmm(first.flatten(2),
                         second.flatten(2).transpose(1, 2)) / (
                             size[0] * size[1])


def fsp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``mean (G^T − G^S)²`` of two (N, C1, C2) FSP matrices."""
    if student.shape != teacher.shape:
        raise ValueError(
            f'FSP matrices must have the same shape; got student '
            f'{tuple(student.shape)} and teacher {tuple(teacher.shape)}.')
    return (student.float() - teacher.float()).pow(2).mean()


def _places_spec(places: Places, side: str) -> Union[str, dict]:
    """A sequence of module paths as one ``record='calls'`` read of their
    closest common parent (the ``forward`` of each); a path or a
    ``dict(path=...)`` as it is."""
    if isinstance(places, (str, dict)):
        return places
    if not isinstance(places, (list, tuple)) or len(places) < 2 or \
            not all(isinstance(p, str) and p for p in places):
        raise TypeError(
            f'{side} must be a module path (e.g. "backbone", whose levels '
            'are paired), a dict(path=...), or a list of two or more '
            f'module paths (e.g. ["backbone.layer1", "backbone.layer2"]); '
            f'got {places!r}.')
    if len(set(places)) != len(places):
        raise ValueError(f'{side} names a module twice: {places!r}.')
    parts = [p.split('.') for p in places]
    common = []
    for names in zip(*parts):
        if len(set(names)) != 1:
            break
        common.append(names[0])
    common = common[:min(len(p) for p in parts) - 1]  # a proper parent
    if not common:
        raise ValueError(
            f'{side}: the modules {list(places)} have no common parent '
            'module below the model (e.g. "backbone.layer1" and '
            '"backbone.layer2" share "backbone"); read places of one '
            'submodule.')
    methods = tuple('.'.join(p[len(common):] + ['forward']) for p in parts)
    return dict(path='.'.join(common), record='calls', methods=methods)


def _check_pairs(pairs: Any) -> Optional[Tuple[Tuple[int, int], ...]]:
    if pairs is None:
        return None
    ok = isinstance(pairs, (list, tuple)) and len(pairs) > 0
    checked = []
    for pair in pairs if ok else ():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or \
                not all(isinstance(i, int) and not isinstance(i, bool) and
                        i >= 0 for i in pair) or pair[0] == pair[1]:
            ok = False
            break
        checked.append((int(pair[0]), int(pair[1])))
    if not ok:
        raise ValueError(
            'pairs must be a non-empty sequence of (i, j) pairs of distinct '
            'level indices >= 0, e.g. ((0, 1), (1, 2)), or None for '
            f'consecutive levels; got {pairs!r}.')
    return tuple(checked)


@MODELS.register_module()
class FlowOfSolutionKD(DistillTerm):
    """FSP: the student's Gram matrices between pairs of its own layers
    match the teacher's (Yim et al., CVPR 2017).

    Each side reads several maps of one model, its *levels*, in one of two
    ways (DistillTerm reads one place a side; both keep that API):

    - one module whose output is a tuple of maps, e.g. ``'backbone'``,
      whose ``out_indices`` give one map a stage;
    - a list of module paths under one parent, e.g.
      ``['backbone.layer1', 'backbone.layer2', 'backbone.layer3']``: the
      term reads them as one ``record='calls'`` read of the parent (the
      ``forward`` of each, in the order given), so stages the model does
      not output (an mmseg backbone with ``out_indices=(3, )``) can be
      paired too; a ``dict(path=..., record='calls', methods=(...))`` is
      taken as it is.

    ``pairs`` index those levels, by default consecutive ones ``((0, 1),
    (1, 2), ...)``. The loss is ``Σ_p λ_p · mean (G^T_p − G^S_p)²`` with
    ``G = F1ᵀF2 / (H·W)`` (see :mod:`mmkd.losses.fsp`): the mean over the
    matrix entries (the paper sums them, with the same λ for every pair),
    and the larger map of a pair average-pooled to the smaller when their
    H×W differ. The matrices are C1×C2 on each side, so a student level
    whose channels differ from the teacher's goes through a 1×1 adaptor
    (``adaptor``, channels inferred, built only for those levels); H×W may
    differ between student and teacher (the matrices do not depend on it).

    Args:
        student: the student's levels: a module path, a list of module
            paths or a ``dict(path=...)`` (see above).
        teacher: the teacher's levels, read the same way.
        pairs: ``((i, j), ...)`` level pairs, or ``None`` (default) for
            consecutive levels.
        pair_weights: λ of each pair; ``None`` (default): 1 each, the
            paper's equal weights.
        adaptor: the adaptor of student levels whose channels differ
            from the teacher's. Default ``dict(type='ConvAdaptor')`` (1×1
            conv); ``None`` refuses differing channels.
        loss_weight: multiplier of the sum over pairs.
        warmup_iters: iterations with the term switched off.

    Examples:
        >>> # consecutive backbone stages (out_indices=(0, 1, 2, 3))
        >>> distill = dict(fsp=dict(
        ...     type='FlowOfSolutionKD', student='backbone',
        ...     teacher='backbone', loss_weight=1.0))
        >>> # stages the model does not output, paired explicitly
        >>> distill = dict(fsp=dict(
        ...     type='FlowOfSolutionKD',
        ...     student=['backbone.layer1', 'backbone.layer2',
        ...              'backbone.layer3'],
        ...     teacher=['backbone.layer1', 'backbone.layer2',
        ...              'backbone.layer3'],
        ...     pairs=((0, 1), (1, 2))))
    """

    def __init__(self,
                 student: Places,
                 teacher: Places,
                 pairs: Optional[Sequence[Sequence[int]]] = None,
                 pair_weights: Optional[Sequence[float]] = None,
                 adaptor: Optional[dict] = dict(type='ConvAdaptor'),
                 loss_weight: float = 1.0,
                 warmup_iters: int = 0) -> None:
        super().__init__(_places_spec(student, 'student'),
                         _places_spec(teacher, 'teacher'), loss_weight,
                         warmup_iters)
        self.pairs = _check_pairs(pairs)
        if pair_weights is not None:
            if not isinstance(pair_weights, (list, tuple)):
                raise TypeError('pair_weights must be a sequence of numbers '
                                f'(one a pair), got {pair_weights!r}.')
            pair_weights = tuple(
                check_loss_weight(w, 'pair_weights') for w in pair_weights)
            if self.pairs is not None and \
                    len(pair_weights) != len(self.pairs):
                raise ValueError(
                    f'pair_weights has {len(pair_weights)} weight(s) for '
                    f'{len(self.pairs)} pair(s) {self.pairs}.')
        self.pair_weights = pair_weights
        if adaptor is not None and not isinstance(adaptor, dict):
            raise TypeError('adaptor must be a config dict such as '
                            'dict(type="ConvAdaptor") or None, got '
                            f'{adaptor!r}.')
        self.adaptor_cfg = adaptor
        self.adaptors = nn.ModuleDict()

    def parse_record(self, value: Any, side: str) -> List[torch.Tensor]:
        """The levels of one side: a tuple of maps, or the outputs of the
        recorded ``forward`` calls in the order the config names them."""
        if not isinstance(value, MethodCalls):
            return as_levels(value, side, self.name)
        spec = self.student_spec if side == 'student' else self.teacher_spec
        levels = []
        for key in spec.methods:
            for call in value.get(key, ()):
                levels.extend(as_levels(call.result, side, self.name))
        return levels

    def level_pairs(self, count: int) -> Tuple[Tuple[int, int], ...]:
        """The configured pairs, or consecutive pairs of ``count`` levels.
        """
        if self.pairs is not None:
            return self.pairs
        return tuple((i, i + 1) for i in range(count - 1))

    def setup(self, student_levels: List[torch.Tensor],
              teacher_levels: List[torch.Tensor],
              student_model: nn.Module) -> None:
        count = min(len(student_levels), len(teacher_levels))
        pairs = self.level_pairs(count)
        where = (f'student {self.student_spec} gives '
                 f'{[tuple(t.shape) for t in student_levels]}, teacher '
                 f'{self.teacher_spec} gives '
                 f'{[tuple(t.shape) for t in teacher_levels]}')
        if not pairs:
            raise ValueError(
                f'Term {self.name!r}: FSP pairs two levels a side, but '
                f'{where}. Read a module giving several maps (e.g. '
                '"backbone") or a list of module paths.')
        if max(max(p) for p in pairs) >= count:
            raise ValueError(
                f'Term {self.name!r}: pairs {pairs} index levels beyond '
                f'those read ({where}).')
        if self.pair_weights is not None and \
                len(self.pair_weights) != len(pairs):
            raise ValueError(
                f'Term {self.name!r}: pair_weights has '
                f'{len(self.pair_weights)} weight(s) for {len(pairs)} '
                f'pair(s) {pairs}.')
        used = sorted({i for pair in pairs for i in pair})
        for level in used:
            s, t = student_levels[level], teacher_levels[level]
            if s.dim() != 4 or t.dim() != 4:
                raise ValueError(
                    f'Term {self.name!r} level {level}: FSP needs (N, C, '
                    f'H, W) maps; {where}.')
            if s.shape[1] == t.shape[1]:
                continue
            if self.adaptor_cfg is None:
                raise ValueError(
                    f'Term {self.name!r} level {level}: student '
                    f'{tuple(s.shape)} and teacher {tuple(t.shape)} differ '
                    'in channels, so their FSP matrices would too, and '
                    'adaptor=None; set adaptor=dict(type="ConvAdaptor").')
            cfg = dict(self.adaptor_cfg, _scope_='mmkd')
            cfg.setdefault('in_channels', s.shape[1])
            cfg.setdefault('out_channels', t.shape[1])
            self.adaptors[str(level)] = MODELS.build(cfg)
        for i, j in pairs:
            for side, levels in (('student', student_levels),
                                 ('teacher', teacher_levels)):
                if levels[i].shape[0] != levels[j].shape[0]:
                    raise ValueError(
                        f'Term {self.name!r}: {side} levels {i} and {j} '
                        'differ in batch size; read maps of one forward.')

    def compute(self, student_levels: List[torch.Tensor],
                teacher_levels: List[torch.Tensor],
                data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
        pairs = self.level_pairs(min(len(student_levels),
                                     len(teacher_levels)))
        weights = self.pair_weights or (1.0, ) * len(pairs)
        adapted: Dict[int, torch.Tensor] = {}

        def student_level(i: int) -> torch.Tensor:
            if i not in adapted:
                key = str(i)
                adapted[i] = self.adaptors[key](student_levels[i]) \
                    if key in self.adaptors else student_levels[i]
            return adapted[i]

        total = student_levels[0].new_zeros((), dtype=torch.float32)
        for (i, j), weight in zip(pairs, weights):
            g_s = fsp_matrix(student_level(i), student_level(j))
            g_t = fsp_matrix(teacher_levels[i].detach(),
                             teacher_levels[j].detach())
            total = total + weight * fsp_loss(g_s, g_t)
        return total
