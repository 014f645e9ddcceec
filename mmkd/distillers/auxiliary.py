"""Self-distillation modules of auxiliary slots: BYOT and ONE.

Both are :class:`~mmkd.slots.TrainableSlotModule` s that a distiller holds
under ``trainable_slots.<name>`` (``teachers=dict(<name>=dict(
role='auxiliary', type=...))``): they read the student's features of the
step (with their gradients), train heads of their own with the task loss
and expose those heads at module paths that the distiller's terms read,
on their student side (``student_model='<slot>'``) or their teacher side
(``teacher_model='<slot>'``). Nothing of theirs is exported: the student's
checkpoint, and what ``tools/extract_student.py`` writes, hold the user's
architecture unchanged.

- :class:`AuxiliaryHeads`, BYOT (Zhang et al., "Be Your Own Teacher",
  ICCV 2019): copies of the student's head on shallower backbone stages,
  each trained with the task loss; the terms distil the student's (the
  deepest) head into them.
- :class:`GatedBranchEnsemble`, ONE (Lan et al., "Knowledge Distillation
  by On-the-Fly Native Ensemble", NeurIPS 2018): extra copies of the
  student's head on its shared backbone and neck, and a gated ensemble of
  every branch (the student's head included) that the terms distil into
  the branches.

Detectors (mmdet dense heads) and segmentors (mmseg decode heads) are
supported; the heads are built from the student's own config, in the
student's package scope.
"""
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..recorders import require_module
from ..registry import MODELS
from ..slots import SlotStep, TrainableSlotModule
from ..utils.model_kind import is_detector, is_segmentor
from ..utils.validation import check_loss_weight
from .probe import probing
from .teacher import build_model_in_scope

#: the keys of one of :class:`AuxiliaryHeads`' ``heads``
AUX_HEAD_KEYS = ('source', 'in_indices', 'neck', 'head', 'loss_weight')


# -- what the two modules share ---------------------------------------------
def model_scope(student: nn.Module) -> str:
    """The registry scope the student's parts are built in (``'mmdet'``,
    ``'mmseg'``, or e.g. ``'mmyolo'`` for a subclass from another
    package).

    Raises:
        TypeError: the student is neither a detector nor a segmentor.
    """
    if not (is_detector(student) or is_segmentor(student)):
        raise TypeError(
            f'The student is a {type(student).__name__}; auxiliary heads '
            'are built for mmdet detectors and mmseg segmentors.')
    return type(student).__module__.partition('.')[0]


def head_attribute(student: nn.Module) -> str:
    """``'bbox_head'`` (one-stage detectors) or ``'decode_head'``.

    Raises:
        TypeError: a detector without a dense ``bbox_head`` (e.g. a
            two-stage detector, whose heads the views do not copy).
    """
    if is_segmentor(student):
        return 'decode_head'
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    if not isinstance(getattr(student, 'bbox_head', None), BaseDenseHead):
        raise TypeError(
            f'The student ({type(student).__name__}) has no dense '
            '"bbox_head"; auxiliary heads copy the head of a one-stage '
            'detector (RetinaNet, ATSS, GFL, FCOS, ...).')
    return 'bbox_head'


def student_head_config(student: nn.Module, student_cfg: dict,
                        attr: str) -> dict:
    """A deep copy of the student's head config, with the detector's
    ``train_cfg``/``test_cfg`` a dense head takes (as mmdet's
    ``SingleStageDetector`` passes them)."""
    cfg = student_cfg.get(attr) if isinstance(student_cfg, dict) else None
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(
            f'student_cfg has no {attr!r} config to copy the head from; '
            f'got keys {sorted(student_cfg or {})}.')
    cfg = copy.deepcopy(dict(cfg))
    if attr == 'bbox_head':
        cfg.update(train_cfg=copy.deepcopy(student_cfg.get('train_cfg')),
                   test_cfg=copy.deepcopy(student_cfg.get('test_cfg')))
    return cfg


def merged_config(default: dict, given: Optional[dict],
                  fill: Dict[str, Any]) -> dict:
    """``given`` with a ``type``: that config, with the ``fill`` keys it
    lacks; ``given`` without one: ``default`` updated by it (so
    ``dict(stacked_convs=2)`` changes one key of the copy); ``None``:
    ``default``. ``fill`` is set on ``default`` in every case."""
    if given is not None and not isinstance(given, dict):
        raise TypeError(f'expected a config dict or None, got {given!r}.')
    if given and 'type' in given:
        cfg = copy.deepcopy(dict(given))
        for key, value in fill.items():
            cfg.setdefault(key, value)
        return cfg
    cfg = dict(copy.deepcopy(default), **fill)
    cfg.update(copy.deepcopy(dict(given or {})))
    return cfg


@torch.no_grad()
def probe_outputs(student: nn.Module, paths: Sequence[str],
                  size: Tuple[int, int]) -> Tuple[Dict[str, Any], Any]:
    """The outputs of student modules ``paths`` and of its
    ``extract_feat`` on a zero image of ``size`` (batch norms in eval
    mode, every buffer restored: :func:`~mmkd.distillers.probe.probing`).
    """
    modules = dict(student.named_modules())
    found: Dict[str, Any] = {}
    handles = [
        modules[path].register_forward_hook(
            lambda m, args, out, path=path: found.setdefault(path, out))
        for path in paths]
    device = next(student.parameters()).device
    try:
        with probing(student):
            features = student.extract_feat(
                torch.zeros(1, 3, *size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    missing = [p for p in paths if p not in found]
    if missing:
        raise ValueError(
            f'Student modules {missing} do not run in extract_feat(), so '
            'their outputs never reach the auxiliary heads; read a '
            'backbone or neck module.')
    return found, features


def as_maps(value: Any, what: str) -> List[Tensor]:
    """A record (one map or a tuple of maps) as a list of (N, C, H, W)."""
    maps = [value] if isinstance(value, Tensor) else list(value) \
        if isinstance(value, (list, tuple)) else None
    if not maps or not all(isinstance(m, Tensor) and m.dim() == 4
                           for m in maps):
        raise TypeError(f'{what} gives {type(value).__name__}, not a '
                        'feature map or a tuple of (N, C, H, W) maps.')
    return maps


def total_losses(losses: Dict[str, Any], prefix: str,
                 weight: float) -> Dict[str, Any]:
    """A head's loss dict under ``<prefix>.<key>``, each loss (a tensor
    or mmdet's list of per-level tensors, summed) times ``weight``;
    other entries (accuracies) as they are, for the log."""
    out = {}
    for key, value in losses.items():
        if 'loss' in key:
            if isinstance(value, (list, tuple)):
                value = sum(value)
            value = value * weight
        out[f'{prefix}.{key}'] = value
    return out


def gated_sum(maps: Sequence[Tensor], weights: Tensor) -> Tensor:
    """``Σ_k w[:, k] · maps[k]``: per image, the weighted sum of K maps.

    Args:
        maps: K tensors of one shape (N, ...).
        weights: (N, K).
    """
    stacked = torch.stack(list(maps), 1)  # (N, K, ...)
    w = weights.reshape(weights.shape + (1, ) * (stacked.dim() - 2))
    return (stacked * w).sum(1).to(maps[0].dtype)


# -- BYOT -------------------------------------------------------------------
@MODELS.register_module()
class AuxiliaryHeads(TrainableSlotModule):
    """BYOT: auxiliary heads on the student's shallower features.

    Be Your Own Teacher (Zhang et al., ICCV 2019) attaches a classifier
    to every stage of a network and trains each shallow one with
    ``(1 − α)·CE + α·KL^τ(q_i, q_deep) + λ·‖F_i − F_deep‖²`` (α = 0.3,
    τ = 3, λ = 0.03), the deepest with CE; the shallow ones are dropped
    at inference. This module is the shallow part: each auxiliary head's
    own task loss times ``loss_weight`` (BYOT's 1 − α = 0.7). The KD from
    the deepest head and the feature hint are the distiller's terms, with
    this slot as their student and the student as their teacher.

    Detectors: each auxiliary head reads ``in_indices`` of a backbone
    output (``source``, default ``'backbone'``) through a light neck, an
    FPN that gives the student neck's number of levels *at its strides*
    (its first input has the stride of the student's first level; the
    deeper levels come from its extra stride-2 convs), and is a copy of
    the student's head config, built afresh. So it lays out the student
    head's priors exactly, and the head views compare the two prior by
    prior (``HeadClassificationKD``, ``LocalizationDistillation``, ...). A
    copy of the head on a subset of the student's FPN levels would lay
    out other priors, which the views refuse. The default ``in_indices``
    are the backbone outputs the student's neck reads, from the one at the
    stride of its first level, but the deepest: e.g. C3 and C4 of a
    ResNet-FPN (strides 8 and 16) for levels P3-P7.

    Segmentors: each auxiliary head is a copy of the student's decode
    head (or a given one, e.g. an ``FCNHead``) reading earlier backbone
    outputs: its ``in_index`` is ``in_indices``, by default one stage
    before the student's (``3 -> 2``; a list loses its last entry), with
    its ``in_channels`` probed.

    Module paths (what the terms read): ``heads.<i>`` (a detector's
    dense head, or a decode head whose logits are ``heads.<i>.conv_seg``)
    and, for detectors, ``necks.<i>`` (the tuple of its levels).

    Args:
        student: the built student (given by the distiller; kept outside
            the submodules, so its weights are saved once, as the
            student's).
        student_cfg: the student's model config (given by the
            distiller); the heads are copies of its head.
        heads: one dict per auxiliary head, keys (all optional):
            ``source`` (a student module path whose output is the tuple of
            stage maps, default ``'backbone'``), ``in_indices`` (which of
            them, see above), ``neck`` (detectors: a config with ``type``
            replaces the default FPN, one without it updates the FPN's
            arguments; ``in_channels`` is probed), ``head`` (a config with
            ``type`` replaces the copy of the student's head, one without
            it updates the copy), ``loss_weight``. Default: one head.
        loss_weight: the weight of every head's task loss without its own
            ``loss_weight``; BYOT's 1 − α = 0.7.
        probe_size: (H, W) of the zero image probed at build time for the
            channels and strides of the sources.

    Raises:
        KeyError: ``source`` is no module of the student; the message
            names it and the nearest valid paths.
        ValueError: unknown keys, indices out of range, or an auxiliary
            neck whose levels do not have the student neck's sizes (the
            message lists both).

    Examples:
        >>> model = dict(
        ...     type='mmkd.Distiller',
        ...     student={{_base_.model}},    # e.g. GFL R50-FPN
        ...     teachers=dict(byot=dict(role='auxiliary',
        ...                             type='mmkd.AuxiliaryHeads',
        ...                             heads=[dict(in_indices=(1, 2))],
        ...                             loss_weight=0.7)),
        ...     distill=dict(
        ...         cls=dict(type='HeadClassificationKD',
        ...                  student_model='byot', head='heads.0',
        ...                  teacher_model='student',
        ...                  teacher_head='bbox_head', loss_weight=0.3),
        ...         hint=dict(type='FeatureImitation',
        ...                   student_model='byot', student='necks.0',
        ...                   teacher_model='student', teacher='neck',
        ...                   loss_weight=0.03)))
    """

    def __init__(self,
                 student: nn.Module,
                 student_cfg: dict,
                 heads: Sequence[dict] = (dict(), ),
                 loss_weight: float = 0.7,
                 probe_size: Tuple[int, int] = (128, 128)) -> None:
        super().__init__()
        object.__setattr__(self, 'student', student)
        self.scope = model_scope(student)
        self.head_attr = head_attribute(student)
        self.segmentation = self.head_attr == 'decode_head'
        if not isinstance(heads, (list, tuple)) or not heads:
            raise ValueError('heads must be a non-empty list of dicts, one '
                             f'per auxiliary head; got {heads!r}.')
        specs = [self._parse_spec(spec, i) for i, spec in enumerate(heads)]
        modules = dict(student.named_modules())
        for spec in specs:
            require_module(modules, spec['source'], 'student',
                           'auxiliary heads')
        self.student_inputs = tuple(dict.fromkeys(s['source']
                                                  for s in specs))
        sources, features = probe_outputs(student, self.student_inputs,
                                          tuple(probe_size))
        default_weight = check_loss_weight(loss_weight, 'loss_weight')
        self.loss_weights = [
            default_weight if s['loss_weight'] is None else
            check_loss_weight(s['loss_weight'], f'heads[{i}].loss_weight')
            for i, s in enumerate(specs)]
        self.sources = [s['source'] for s in specs]
        head_cfg = student_head_config(student, student_cfg, self.head_attr)
        self.heads = nn.ModuleList()
        if self.segmentation:
            for i, spec in enumerate(specs):
                self.heads.append(self._seg_head(
                    spec, head_cfg, as_maps(sources[spec['source']],
                                            spec['source']), i))
            return
        self.in_indices: List[Tuple[int, ...]] = []
        self.necks = nn.ModuleList()
        levels = as_maps(features, 'the student\'s extract_feat()')
        for i, spec in enumerate(specs):
            stages = as_maps(sources[spec['source']], spec['source'])
            indices = self._det_indices(spec, stages, levels, i)
            neck = self._det_neck(spec, [stages[j] for j in indices], levels,
                                  i)
            self.in_indices.append(indices)
            self.necks.append(neck)
            self.heads.append(build_model_in_scope(merged_config(
                head_cfg, spec['head'],
                dict(in_channels=levels[0].shape[1])), self.scope))

    @staticmethod
    def _parse_spec(spec: Any, index: int) -> dict:
        if not isinstance(spec, dict) or set(spec) - set(AUX_HEAD_KEYS):
            raise ValueError(
                f'heads[{index}] must be a dict with keys among '
                f'{AUX_HEAD_KEYS}; got {spec!r}.')
        spec = dict(dict.fromkeys(AUX_HEAD_KEYS), **spec)
        spec['source'] = spec['source'] or 'backbone'
        if not isinstance(spec['source'], str):
            raise TypeError(f'heads[{index}].source must be a module path '
                            f'such as "backbone"; got {spec["source"]!r}.')
        return spec

    def _det_indices(self, spec: dict, stages: List[Tensor],
                     levels: List[Tensor], index: int) -> Tuple[int, ...]:
        """The given ``in_indices``, checked, or the default: from the
        source map at the size of the student's first level to the last
        but one."""
        where = f'heads[{index}].in_indices'
        indices = spec['in_indices']
        if indices is None:
            sizes = [s.shape[-2:] for s in stages]
            if levels[0].shape[-2:] not in sizes:
                raise ValueError(
                    f'No output of {spec["source"]!r} (sizes '
                    f'{[tuple(s) for s in sizes]}) has the size of the '
                    f'student\'s first level {tuple(levels[0].shape[-2:])};'
                    f' give {where}.')
            first = sizes.index(levels[0].shape[-2:])
            indices = tuple(range(first, max(first + 1, len(stages) - 1)))
        if isinstance(indices, int):
            indices = (indices, )
        if not isinstance(indices, (list, tuple)) or not indices or any(
                isinstance(j, bool) or not isinstance(j, int) or
                not 0 <= j < len(stages) for j in indices):
            raise ValueError(
                f'{where} must be indices of the {len(stages)} maps '
                f'{spec["source"]!r} gives (0 to {len(stages) - 1}); got '
                f'{indices!r}.')
        return tuple(indices)

    def _det_neck(self, spec: dict, inputs: List[Tensor],
                  levels: List[Tensor], index: int) -> nn.Module:
        """The light neck, checked on the probe: its levels must have the
        sizes and channels of the student's."""
        default = dict(type='FPN', out_channels=levels[0].shape[1],
                       num_outs=len(levels), add_extra_convs='on_output')
        cfg = merged_config(default, spec['neck'], dict(
            in_channels=[m.shape[1] for m in inputs]))
        neck = build_model_in_scope(cfg, self.scope)
        with torch.no_grad(), probing(neck):
            outs = as_maps(neck(inputs), f'heads[{index}].neck')
        mine = [tuple(m.shape[1:]) for m in outs]
        theirs = [tuple(m.shape[1:]) for m in levels]
        if mine != theirs:
            raise ValueError(
                f'The neck of heads[{index}] gives levels (C, H, W) {mine} '
                f'on the probe image; the student\'s head reads {theirs}. '
                'An auxiliary copy of the head needs the same levels (its '
                'priors must line up with the student\'s): start '
                'in_indices at the stride of the student\'s first level '
                'and give the neck as many outputs as the student\'s.')
        return neck

    def _seg_head(self, spec: dict, head_cfg: dict, stages: List[Tensor],
                  index: int) -> nn.Module:
        if spec['neck'] is not None:
            raise ValueError(
                f'heads[{index}].neck: a segmentor\'s auxiliary decode '
                'head reads the backbone maps itself (its in_index); give '
                'no neck.')
        where = f'heads[{index}].in_indices'
        indices = spec['in_indices']
        if indices is None:
            own = head_cfg.get('in_index', -1)
            own = [j % len(stages) for j in own] if isinstance(
                own, (list, tuple)) else own % len(stages)
            indices = own[:-1] if isinstance(own, list) else own - 1
            if indices in ([], -1):
                raise ValueError(
                    f'The student\'s decode head reads map(s) {own} of '
                    f'{spec["source"]!r}, so there is no earlier stage by '
                    f'default; give {where}, or a source that gives an '
                    'earlier stage (e.g. source=\'backbone.layer2\', '
                    'in_indices=0 for a backbone that outputs its last '
                    'stage only).')
        many = isinstance(indices, (list, tuple))
        chosen = list(indices) if many else [indices]
        if not chosen or any(isinstance(j, bool) or not isinstance(j, int)
                             or not 0 <= j < len(stages) for j in chosen):
            raise ValueError(
                f'{where} must be indices of the {len(stages)} maps '
                f'{spec["source"]!r} gives; got {indices!r}.')
        channels = [stages[j].shape[1] for j in chosen]
        fill = dict(in_index=chosen if many else chosen[0],
                    in_channels=channels if many else channels[0])
        if spec['head'] and 'type' in spec['head']:
            fill['num_classes'] = head_cfg.get('num_classes')
        return build_model_in_scope(
            merged_config(head_cfg, spec['head'], fill), self.scope)

    def slot_loss(self, step: SlotStep) -> Dict[str, Tensor]:
        """Every auxiliary head's task loss on the step's samples, under
        ``heads.<i>.<loss key>``, weighted. Their ``loss()`` calls run
        here, so a term reading ``heads.<i>`` records them."""
        losses = {}
        for i, head in enumerate(self.heads):
            # one map (e.g. a backbone layer's output) as a list of one
            stages = as_maps(step.student_outputs[self.sources[i]],
                             self.sources[i])
            if self.segmentation:
                head_losses = head.loss(stages, step.data_samples,
                                        self.student.train_cfg)
            else:
                feats = self.necks[i]([stages[j]
                                       for j in self.in_indices[i]])
                head_losses = head.loss(feats, step.data_samples)
            losses.update(total_losses(head_losses, f'heads.{i}',
                                       self.loss_weights[i]))
        return losses


# -- ONE ----------------------------------------------------------------------
class BranchGate(nn.Module):
    """ONE's gate: per image, a softmax over the K branches of a linear
    layer on the globally average-pooled shared features.

    For dense heads the shared features are several maps (the FPN levels
    the heads read): each is pooled to its C_l channels and the pooled
    vectors are concatenated, ``g = softmax(W·[GAP(P_1), ..., GAP(P_L)] +
    b)``. The layer starts at zero, so the gate starts uniform (1/K).
    ONE's code puts a batch norm and a ReLU before the softmax; they are
    left out here (a batch of 2 images, COCO's per-GPU batch, gives batch
    statistics of little meaning).

    Args:
        in_channels: Σ C_l of the pooled maps.
        num_branches: K.
    """

    def __init__(self, in_channels: int, num_branches: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_branches)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, maps: Sequence[Tensor]) -> Tensor:
        """(N, K) branch weights, each row summing to 1."""
        pooled = torch.cat([m.float().mean((2, 3)) for m in maps], 1)
        return self.fc(pooled).softmax(1)


class GatedSum(nn.Module):
    """The gated ensemble of K (N, C, H, W) score maps (segmentation
    logits): its forward output is what a pixel-wise term reads as the
    ensemble's logits."""

    def forward(self, maps: Sequence[Tensor], weights: Tensor) -> Tensor:
        return gated_sum(maps, weights)


class GatedEnsembleHeadMixin:
    """A dense head of the student's class whose predictions are the gated
    sum of the branches' (see :func:`gated_ensemble_head`).

    It has no layers and no weights: ``_init_layers`` builds nothing and
    ``init_weights`` initialises nothing; its assigner, prior generator,
    box coder and losses are the head's own (from the student's head
    config), so ``loss_by_feat`` trains the ensemble as the student's head
    is trained, and head views read its ``forward`` calls as a teacher
    head's: it is an instance of the student's head class, with the
    class's ``get_targets``.
    """

    def _init_layers(self) -> None:
        """No layers: the predictions are the branches'."""

    def init_weights(self) -> None:
        """No weights."""

    def forward(self, branch_outputs: Sequence[Sequence[List[Tensor]]],
                weights: Tensor) -> Tuple[List[Tensor], ...]:
        """Every output map of the branches' forward (class logits, box
        outputs, centerness logits), level by level, summed with the
        per-image gate weights.

        Args:
            branch_outputs: K results of the branches' forward, each a
                tuple of per-level lists (e.g. ``(cls_scores,
                bbox_preds)``).
            weights: (N, K) gate weights.
        """
        first = branch_outputs[0]
        shapes = [[tuple(m.shape) for m in out] for out in first]
        for k, out in enumerate(branch_outputs[1:], 1):
            if [[tuple(m.shape) for m in o] for o in out] != shapes:
                raise ValueError(
                    f'Branch {k} of the ensemble gives maps of other '
                    f'shapes than branch 0 ({shapes}); the branches must '
                    'be copies of one head on the same features.')
        return tuple(
            [gated_sum([out[i][level] for out in branch_outputs], weights)
             for level in range(len(first[i]))]
            for i in range(len(first)))


_ENSEMBLE_TYPES: Dict[type, type] = {}


def gated_ensemble_head(head_cfg: dict, head_type: type,
                        scope: str) -> nn.Module:
    """A weightless ensemble head of ``head_type`` built from
    ``head_cfg`` (:class:`GatedEnsembleHeadMixin` before ``head_type`` in
    its bases; one such class per head class)."""
    if head_type not in _ENSEMBLE_TYPES:
        _ENSEMBLE_TYPES[head_type] = type(
            f'GatedEnsemble{head_type.__name__}',
            (GatedEnsembleHeadMixin, head_type),
            dict(__module__=__name__, __doc__=GatedEnsembleHeadMixin.__doc__))
    cfg = dict(head_cfg, type=_ENSEMBLE_TYPES[head_type])
    cfg.pop('init_cfg', None)
    return build_model_in_scope(cfg, scope)


@MODELS.register_module()
class GatedBranchEnsemble(TrainableSlotModule):
    """ONE: branches on the student's shared trunk and their gated
    ensemble, the teacher of every branch.

    On-the-fly Native Ensemble (Lan et al., NeurIPS 2018) shares the low
    layers of a network among K branches (3 in the paper), gates them per
    sample (a softmax over the branches of a linear layer on the pooled
    shared features) and trains ``Σ_k CE(z_k) + CE(z_e) + T²·Σ_k KL(p_e^T ‖
    p_k^T)`` (T = 3) with ``z_e = Σ_k g_k·z_k``, the ensemble's logits;
    one branch is kept for inference.

    Here the student's own head is branch 0 and is the one kept (it is
    the student's); this module holds the K − 1 others, copies of the
    student's head config on the same features, the gate
    (:class:`BranchGate`) and the ensemble, and trains the branches and
    the ensemble with the task loss (times ``branch_loss_weight`` and
    ``ensemble_loss_weight``). The ensemble's KD into the branches is the
    distiller's terms with ``teacher_model='<slot>'`` and
    ``teacher_head='ensemble'`` (detectors) or ``teacher='ensemble'``
    (segmentors).

    - Detectors: the branches read the student's neck levels (its
      ``extract_feat`` output, the module ``neck``); the gate pools each
      level and concatenates them. The ensemble ``ensemble`` is a dense
      head of the student's head class without weights
      (:class:`GatedEnsembleHeadMixin`): its forward sums every output map
      of the K heads with the gate weights, i.e. class logits, box
      outputs in the head's own encoding (GFL's edge-distribution logits,
      RetinaNet's and ATSS's deltas, FCOS's distances) and centerness
      logits (ATSS, FCOS); its ``loss_by_feat`` (the head's) is the
      ensemble's task loss. Head views read it as a teacher head.
    - Segmentors: the branches are decode heads reading the student's
      backbone maps; the gate pools the maps the decode head reads (its
      ``in_index``); ``ensemble`` outputs the gated sum of the K logit
      maps, trained with the student decode head's ``loss_by_feat``.

    Module paths: ``branches.<i>`` (heads; a decode head's logits are
    ``branches.<i>.conv_seg``), ``gate`` and ``ensemble``.

    Args:
        student: the built student (given by the distiller).
        student_cfg: the student's model config (given by the distiller).
        num_branches: K, the student's head included (ONE: 3).
        branch: a config with ``type`` replacing the copy of the
            student's head for the branches, or one without it updating
            the copy; ``None``: the copy.
        branch_loss_weight: weight of the branches' task losses.
        ensemble_loss_weight: weight of the ensemble's task loss.
        probe_size: (H, W) of the zero image probed for the channels the
            gate pools.

    Raises:
        ValueError: ``num_branches`` below 2, or a branch config that
            does not keep the student head's class (detectors: the
            ensemble is of that class).

    Examples:
        >>> model = dict(
        ...     type='mmkd.Distiller',
        ...     student={{_base_.model}},    # e.g. GFL R50-FPN
        ...     teachers=dict(one=dict(role='auxiliary',
        ...                            type='mmkd.GatedBranchEnsemble',
        ...                            num_branches=3)),
        ...     distill=dict(
        ...         cls=dict(type='HeadClassificationKD',
        ...                  teacher_model='one', head='bbox_head',
        ...                  teacher_head='ensemble', temperature=3),
        ...         ld=dict(type='LocalizationDistillation',
        ...                 teacher_model='one', head='bbox_head',
        ...                 teacher_head='ensemble')))
    """

    def __init__(self,
                 student: nn.Module,
                 student_cfg: dict,
                 num_branches: int = 3,
                 branch: Optional[dict] = None,
                 branch_loss_weight: float = 1.0,
                 ensemble_loss_weight: float = 1.0,
                 probe_size: Tuple[int, int] = (128, 128)) -> None:
        super().__init__()
        object.__setattr__(self, 'student', student)
        if isinstance(num_branches, bool) or \
                not isinstance(num_branches, int) or num_branches < 2:
            raise ValueError('num_branches (K, the student\'s head '
                             'included) must be an integer >= 2; got '
                             f'{num_branches!r}.')
        self.scope = model_scope(student)
        self.head_attr = head_attribute(student)
        self.segmentation = self.head_attr == 'decode_head'
        self.branch_loss_weight = check_loss_weight(
            branch_loss_weight, 'branch_loss_weight')
        self.ensemble_loss_weight = check_loss_weight(
            ensemble_loss_weight, 'ensemble_loss_weight')
        head_cfg = student_head_config(student, student_cfg, self.head_attr)
        branch_cfg = merged_config(head_cfg, branch, {})
        self.trunk = 'neck' if student.with_neck else 'backbone'
        if self.segmentation:
            self.student_logits = 'decode_head.conv_seg'
            self.student_inputs = (self.trunk, self.student_logits)
        else:
            self.student_inputs = (self.trunk, 'bbox_head')
        _, features = probe_outputs(student, (), tuple(probe_size))
        maps = as_maps(features, 'the student\'s extract_feat()')
        if self.segmentation:
            self.gate_indices = self._read_indices(student.decode_head,
                                                   len(maps))
            maps = [maps[j] for j in self.gate_indices]
        self.branches = nn.ModuleList(
            build_model_in_scope(copy.deepcopy(branch_cfg), self.scope)
            for _ in range(num_branches - 1))
        head_type = type(getattr(student, self.head_attr))
        if any(type(b) is not head_type for b in self.branches):
            raise ValueError(
                f'The branches are {type(self.branches[0]).__name__}s, the '
                f'student\'s head a {head_type.__name__}; the gated '
                'ensemble sums the outputs of heads of one class. Keep the '
                'type of the student\'s head in branch.')
        self.gate = BranchGate(sum(m.shape[1] for m in maps), num_branches)
        self.ensemble = GatedSum() if self.segmentation else \
            gated_ensemble_head(head_cfg, head_type, self.scope)

    @staticmethod
    def _read_indices(head: nn.Module, count: int) -> List[int]:
        """The maps an mmseg decode head reads (its ``in_index``)."""
        index = head.in_index
        indices = list(index) if isinstance(index, (list, tuple)) \
            else [index]
        return [j % count for j in indices]

    def slot_loss(self, step: SlotStep) -> Dict[str, Tensor]:
        """The branches' task losses (``branches.<i>.<key>``) and the
        ensemble's (``ensemble.<key>``), weighted. Each branch runs its
        forward and ``loss_by_feat`` as its own ``loss()`` does, so terms
        reading ``branches.<i>`` record them."""
        feats = step.student_outputs[self.trunk]
        if self.segmentation:
            return self._seg_losses(step, feats)
        from mmdet.models.utils import unpack_gt_instances
        gts, ignored, metas = unpack_gt_instances(step.data_samples)
        outputs = [tuple(step.student_outputs['bbox_head'])]
        losses = {}
        for i, branch in enumerate(self.branches):
            out = branch(feats)  # BaseDenseHead.loss: forward, then
            outputs.append(out)  # loss_by_feat on the gt instances
            losses.update(total_losses(
                branch.loss_by_feat(*out, gts, metas, ignored),
                f'branches.{i}', self.branch_loss_weight))
        ensemble = self.ensemble(outputs, self.gate(as_maps(feats,
                                                            self.trunk)))
        losses.update(total_losses(
            self.ensemble.loss_by_feat(*ensemble, gts, metas, ignored),
            'ensemble', self.ensemble_loss_weight))
        return losses

    def _seg_losses(self, step: SlotStep, feats: Any) -> Dict[str, Tensor]:
        logits = step.student_outputs[self.student_logits]
        if not isinstance(logits, Tensor):
            raise RuntimeError(
                f'The student\'s {self.student_logits} ran '
                f'{len(logits)} times in its loss; the ensemble reads one '
                'logit map of it.')
        outputs, losses = [logits], {}
        for i, branch in enumerate(self.branches):
            out = branch.forward(feats)  # as BaseDecodeHead.loss does
            outputs.append(out)
            losses.update(total_losses(
                branch.loss_by_feat(out, step.data_samples),
                f'branches.{i}', self.branch_loss_weight))
        maps = as_maps(feats, self.trunk)
        weights = self.gate([maps[j] for j in self.gate_indices])
        ensemble = self.ensemble(outputs, weights)
        losses.update(total_losses(
            self.student.decode_head.loss_by_feat(ensemble,
                                                  step.data_samples),
            'ensemble', self.ensemble_loss_weight))
        return losses
