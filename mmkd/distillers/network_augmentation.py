"""Network augmentation (NetAug): the student trains inside wider models
that share its weights.

Cai et al., "Network Augmentation for Tiny Deep Learning", ICLR 2022.
A tiny model underfits, so instead of regularising it NetAug augments it:
each step adds ``α · L(W_base ∪ W_aug)`` to ``L(W_base)``, where the
augmented model is a wider copy of the student whose first channels *are*
the student's weights and whose extra channels are extra parameters; the
augmented width is drawn per step from a set (the paper's width
multipliers); only the student is kept.

:class:`NetworkAugmentation` is an ``augmented`` slot of the distiller
(``teachers=dict(netaug=dict(role='augmented',
type='mmkd.NetworkAugmentation', width_multipliers=(1.5, 2.0)))``).
"""
import copy
import inspect
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..registry import MODELS
from ..slots import SlotStep, TrainableSlotModule
from ..utils.validation import check_loss_weight
from .auxiliary import model_scope, total_losses
from .teacher import build_model_in_scope

#: the width arguments :func:`widen_config` scales, per model part
WIDTH_KEYS: Dict[str, Tuple[str, ...]] = {
    'backbone': ('base_channels', 'stem_channels'),
    'neck': ('in_channels', 'out_channels'),
    'bbox_head': ('in_channels', 'feat_channels'),
    'decode_head': ('in_channels', 'channels'),
    'auxiliary_head': ('in_channels', 'channels'),
}


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(1, int(round(value * factor)))
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return type(value)(_scaled(v, factor) for v in value)
    return value


def _class_default(part_cfg: dict, key: str, scope: str) -> Any:
    """The default of ``key`` in the signature of the part's class (e.g.
    mmseg's ``ResNetV1c(stem_channels=64)``), or ``None``."""
    part_type = part_cfg.get('type')
    if not isinstance(part_type, str):
        cls = part_type
    else:
        from mmengine.registry import MODELS as ROOT_MODELS
        name = part_type if '.' in part_type else f'{scope}.{part_type}'
        cls = ROOT_MODELS.get(name)
    # a subclass may take **kwargs (mmseg's ResNetV1c): look up its bases
    for klass in getattr(cls, '__mro__', ()):
        param = inspect.signature(klass.__init__).parameters.get(key)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    return None


def widen_config(model_cfg: dict, factor: float, scope: str) -> dict:
    """A copy of ``model_cfg`` with its widths times ``factor``.

    Scales the arguments of :data:`WIDTH_KEYS` (ResNet ``base_channels``
    and ``stem_channels``, FPN ``in_channels``/``out_channels``, a dense
    head's ``in_channels``/``feat_channels``, a decode head's
    ``in_channels``/``channels``), from the config or, where the config
    leaves one out, from the class's default (so mmseg's ResNetV1c stem of
    64 widens too). Group counts (GroupNorm ``num_groups``), class counts
    and depths stay.
    """
    wide = copy.deepcopy(dict(model_cfg))
    for part, keys in WIDTH_KEYS.items():
        part_cfg = wide.get(part)
        if not isinstance(part_cfg, dict):
            continue
        part_cfg = dict(part_cfg)
        for key in keys:
            value = part_cfg.get(key, _class_default(part_cfg, key, scope))
            if value is not None:
                part_cfg[key] = _scaled(value, factor)
        wide[part] = part_cfg
    return wide


def without_pretrained(model_cfg: dict) -> dict:
    """``model_cfg`` without pretrained weights: a segmentor's (and its
    backbone's) ``pretrained`` and every ``init_cfg`` of type
    ``Pretrained`` go. A wide model's extra channels start from its random
    initialisation; a pretrained checkpoint has the narrow model's shapes
    (its leading slice is the student, which loads it itself)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            init = value.get('init_cfg')
            out = {k: strip(v) for k, v in value.items()
                   if k not in ('pretrained', 'init_cfg')}
            if isinstance(init, dict) and init.get('type') != 'Pretrained':
                out['init_cfg'] = copy.deepcopy(init)
            elif isinstance(init, list):
                out['init_cfg'] = [copy.deepcopy(c) for c in init
                                   if c.get('type') != 'Pretrained']
            return out
        if isinstance(value, (list, tuple)):
            return type(value)(strip(v) for v in value)
        return value
    return strip(dict(model_cfg))


def tie_check(student: nn.Module, wide: nn.Module, where: str) -> None:
    """Check that every parameter of ``wide`` has a student parameter of
    the same name whose shape fits in its leading slice.

    Raises:
        ValueError: the first parameter that does not line up (a name
            only one model has, another number of dimensions, or a
            student dimension larger than the wide one).
    """
    mine = dict(student.named_parameters())
    theirs = dict(wide.named_parameters())
    for name in sorted(set(mine) ^ set(theirs)):
        owner = 'the student' if name in mine else 'the wide model'
        raise ValueError(
            f'{where}: only {owner} has parameter {name!r}; the wide '
            'model must be the student\'s config with other widths only '
            '(ResNet base_channels, FPN out_channels, head feat_channels, '
            'decode-head channels).')
    for name, param in theirs.items():
        small = tuple(mine[name].shape)
        if len(small) != param.dim() or any(
                s > w for s, w in zip(small, param.shape)):
            raise ValueError(
                f'{where}: parameter {name!r} is {small} in the student '
                f'and {tuple(param.shape)} in the wide model; every '
                'dimension of the wide one must be at least the '
                'student\'s (the student is its leading slice).')


def _detach_parameters(model: nn.Module) -> List[Tuple[nn.Module, str,
                                                         str]]:
    """Turn every parameter of ``model`` into a plain attribute (set each
    step to a tensor assembled from the shared weights); returns
    ``(owner module, attribute, full name)``."""
    slots = []
    for name, _ in list(model.named_parameters()):
        owner_path, _, attr = name.rpartition('.')
        owner = model.get_submodule(owner_path) if owner_path else model
        value = owner._parameters.pop(attr)
        setattr(owner, attr, value.detach())
        slots.append((owner, attr, name))
    return slots


@MODELS.register_module()
class NetworkAugmentation(TrainableSlotModule):
    """NetAug: wider copies of the student that share its weights.

    Each augmented model is the student's config with its widths times a
    multiplier (:func:`widen_config`), or a given wide config that differs
    only in widths. Their parameters are tied to the student's, parameter
    by parameter: the widest model's tensor ``W`` of each parameter is an
    extra parameter of this module whose leading slice is replaced, every
    step, by the student's tensor (``W[:c_out, :c_in, ...] = W_student``);
    a narrower augmented model uses the leading slice of ``W``. So a
    gradient step on ``L(student) + α·L(augmented)`` moves the student's
    weights by both losses and the extra channels by the second only, and
    the student inside the augmented model is always the student. Batch
    norms keep their own statistics in every model (buffers are not
    shared). Per step one augmented width is drawn, uniformly, from the
    iteration number (the same on every DDP rank and after a resume); all
    extra weights belong to the widest model, so every parameter of this
    module takes part in every step (DDP without
    ``find_unused_parameters``).

    Channel order: the student's channel ``i`` is the wide model's channel
    ``i`` in every layer. Layers that concatenate maps (PSP's pyramid,
    an FCN with ``concat_input``) or group channels (GroupNorm) tie
    weights by shape but mix the student's channels with extra ones there;
    NetAug's own models (MobileNets, ResNets with batch norm) have neither.

    Defaults: the paper draws the augmented width from multipliers up to
    about 2× per step and uses ``α = 1``; here ``width_multipliers=(2.0,)``
    and ``loss_weight=1.0``.

    Args:
        student: the built student (given by the distiller).
        student_cfg: the student's model config (given by the distiller).
        width_multipliers: the widths an augmented model may have, each
            above 1.
        wide_configs: instead of multipliers, the model configs of the
            augmented models (the student's with other widths).
        loss_weight: α.

    Raises:
        ValueError: a multiplier not above 1, both or neither of
            ``width_multipliers`` and ``wide_configs``, or a wide model
            whose parameters do not line up with the student's (the
            message names the first).

    Examples:
        >>> model = dict(
        ...     type='mmkd.Distiller',
        ...     student={{_base_.model}},
        ...     teachers=dict(netaug=dict(
        ...         role='augmented', type='mmkd.NetworkAugmentation',
        ...         width_multipliers=(1.5, 2.0), loss_weight=1.0)),
        ...     distill=dict())
    """

    def __init__(self,
                 student: nn.Module,
                 student_cfg: dict,
                 width_multipliers: Optional[Sequence[float]] = (2.0, ),
                 wide_configs: Optional[Sequence[dict]] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        object.__setattr__(self, 'student', student)
        self.scope = model_scope(student)
        self.loss_weight = check_loss_weight(loss_weight)
        if wide_configs is not None:
            configs = [without_pretrained(c) for c in wide_configs]
        else:
            if not width_multipliers or any(
                    not isinstance(m, (int, float)) or m <= 1
                    for m in width_multipliers):
                raise ValueError(
                    'width_multipliers must be a non-empty list of widths '
                    f'above 1 (e.g. (1.5, 2.0)); got {width_multipliers!r}.')
            configs = [without_pretrained(widen_config(
                student_cfg, float(m), self.scope))
                for m in width_multipliers]
        if not configs:
            raise ValueError('wide_configs is empty: give at least one.')
        self.wide_models = nn.ModuleList(
            build_model_in_scope(cfg, self.scope) for cfg in configs)
        for k, wide in enumerate(self.wide_models):
            tie_check(student, wide, f'wide model {k}')
        # the widest tensor of every parameter holds the extra weights
        shapes: Dict[str, torch.Size] = {}
        values: Dict[str, Tensor] = {}
        for wide in self.wide_models:
            for name, param in wide.named_parameters():
                if name not in shapes or param.numel() > shapes[name].numel():
                    shapes[name], values[name] = param.shape, param
        for wide in self.wide_models:
            for name, param in wide.named_parameters():
                if any(p > s for p, s in zip(param.shape, shapes[name])):
                    raise ValueError(
                        f'The wide models are not nested: parameter '
                        f'{name!r} is {tuple(param.shape)} in one and '
                        f'{tuple(shapes[name])} in the widest.')
        self.names = sorted(shapes)
        self.extras = nn.ParameterList(
            nn.Parameter(values[name].detach().clone())
            for name in self.names)
        self._attrs = [_detach_parameters(wide)
                       for wide in self.wide_models]

    def _student_params(self) -> Dict[str, Tensor]:
        return dict(self.student.named_parameters())

    def shared_weights(self) -> Dict[str, Tensor]:
        """Every parameter of the widest model as this step uses it: the
        extra tensor with the student's weights in its leading slice
        (a differentiable function of both)."""
        student = self._student_params()
        out = {}
        for name, extra in zip(self.names, self.extras):
            small = student[name]
            full = extra.clone()
            full[tuple(slice(0, s) for s in small.shape)] = small
            out[name] = full
        return out

    def bind(self, index: int) -> nn.Module:
        """Set the parameters of wide model ``index`` to its slice of the
        shared weights; returns the model."""
        weights = self.shared_weights()
        for owner, attr, name in self._attrs[index]:
            shape = getattr(owner, attr).shape
            setattr(owner, attr,
                    weights[name][tuple(slice(0, s) for s in shape)])
        return self.wide_models[index]

    @staticmethod
    def draw(iteration: int, count: int) -> int:
        """The augmented model of a step: uniform, from the iteration."""
        return random.Random(iteration).randrange(count)

    def init_weights(self) -> None:
        """Initialise the extra weights as the widest model's own
        ``init_weights`` would (it writes into them in place); the
        narrower models hold no weights of their own."""
        for k, wide in enumerate(self.wide_models):
            if not hasattr(wide, 'init_weights'):
                continue
            by_name = dict(zip(self.names, self.extras))
            for owner, attr, name in self._attrs[k]:
                shape = getattr(owner, attr).shape
                if shape == by_name[name].shape:
                    setattr(owner, attr, by_name[name].data)
                else:  # a narrower model: its init is not kept
                    setattr(owner, attr, torch.empty(shape))
            wide.init_weights()
        self._is_init = True

    def slot_loss(self, step: SlotStep) -> Dict[str, Tensor]:
        """``α · L(augmented)`` of the drawn wide model on the step's
        batch (already preprocessed by the student), under
        ``wide.<loss key>``."""
        index = self.draw(step.iteration, len(self.wide_models))
        wide = self.bind(index)
        losses = wide.loss(step.inputs, step.data_samples)
        return total_losses(losses, 'wide', self.loss_weight)
