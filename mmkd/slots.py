"""Models with roles: the models a distiller holds beside its student.

A *slot* is one such model with its name, its role, the recorder of what
the terms read from it, the inputs it sees and the precision it runs in.
Terms name the slot they read (``teacher_model=``); the distiller runs,
once a step, every slot that some term reads at that step, only as deep as
those terms need.

This module sits below both the distiller and the terms: it holds the
per-slot settings (:class:`SlotInputs`, :func:`parse_autocast`,
:func:`slot_autocast`), the slot itself (:class:`ModelSlot`) and what one
term reads on its teacher side (:class:`TeacherChoice`).

Roles (see ``shared/DESIGN.md``, "Models with roles"):

=========  ==================================  ==============  =========
role       learns                              in checkpoints  exported
=========  ==================================  ==============  =========
frozen     no (eval, no_grad)                  no              no
ema        no (the mean of the student's       yes (resume is  no
           weights, updated once a step)       exact)
peer       yes (its own task loss and the      yes             any, by
           terms where it is the student)                      name
auxiliary  yes (e.g. BYOT heads on the         yes             no
           student's shallower features)
augmented  yes (NetAug: a wider model sharing  its extra       no
           the student's weights)              weights
=========  ==================================  ==============  =========

Trainable slots (peer, auxiliary, augmented) are submodules of the
distiller (``trainable_slots.<name>.``): in the state dict, the optimizer
and DDP. Auxiliary and augmented slots are :class:`TrainableSlotModule`
subclasses; each step the distiller calls their
:meth:`~TrainableSlotModule.slot_loss` with a :class:`SlotStep`.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

ROLES = ('frozen', 'ema', 'peer', 'auxiliary', 'augmented')
#: the roles whose slots learn (submodules of the distiller)
TRAINABLE_ROLES = ('peer', 'auxiliary', 'augmented')
AUTOCAST_DTYPES = ('float16', 'bfloat16')
SCHEDULE_UNITS = ('iter', 'epoch')


def parse_autocast(value: Union[bool, str, torch.dtype],
                   where: str = 'teacher') -> Union[bool, torch.dtype]:
    """A slot's ``autocast`` option: ``False``, ``True`` or a dtype.

    Args:
        value: ``False`` (default: the slot runs in the precision of its
            weights, float32, even under ``--amp``); ``True`` (autocast in
            the dtype of the enclosing autocast, i.e. the one ``--amp``
            chose, else the device's default: float16 on GPUs, bfloat16 on
            CPUs); or ``'float16'`` / ``'bfloat16'`` (or the torch dtype).
        where: the slot, for the message (e.g. ``'teachers.r101'``).

    Raises:
        ValueError: any other value; the message lists the valid ones.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in AUTOCAST_DTYPES:
        return getattr(torch, value)
    if isinstance(value, torch.dtype) and str(value)[6:] in AUTOCAST_DTYPES:
        return value
    raise ValueError(
        f'{where}.autocast must be False, True, "float16" or "bfloat16"; '
        f'got {value!r}.')


def slot_autocast(device_type: str,
                  autocast: Union[bool, torch.dtype]) -> torch.autocast:
    """The autocast context a frozen slot's forward runs in.

    ``False`` switches autocast *off* (an enclosing ``--amp`` context does
    not reach the slot), so its records are float32; otherwise the records
    come out in the autocast dtype and the terms, which compute their
    losses in float32, take them as they are.

    Args:
        device_type: where the inputs are, e.g. ``'cuda'`` or ``'cpu'``.
        autocast: a value returned by :func:`parse_autocast`.
    """
    if autocast is False:
        return torch.autocast(device_type, enabled=False)
    dtype = None if autocast is True else autocast
    return torch.autocast(device_type, dtype=dtype)


@dataclass(frozen=True)
class SlotInputs:
    """What a slot sees instead of the student's batch.

    Args:
        scale: the batch's images (and ground truth) rescaled by this
            factor, e.g. ``2.0`` for a teacher at twice the student's
            resolution. Default 1 (the student's images).
        key: read the images from this key of the batch (a second view
            or modality that the data pipeline packs beside ``inputs``,
            e.g. with :class:`mmkd.PackExtraInputs`) and preprocess them
            with the slot's own data preprocessor. Default ``None``.
        channels: channels of the ``key`` images, for the build-time probe
            batch; default: the length of the slot preprocessor's ``mean``
            (3 when it does not normalise).

    Examples:
        >>> teachers = dict(
        ...     big=dict(config='...', checkpoint='...',
        ...              inputs=dict(scale=2.0)),       # 2x resolution
        ...     depth=dict(config='...', checkpoint='...',
        ...                inputs=dict(key='depth')))   # another modality
    """
    scale: float = 1.0
    key: Optional[str] = None
    channels: Optional[int] = None

    @classmethod
    def parse(cls, value: Optional[dict], where: str) -> 'SlotInputs':
        """``None`` or ``dict(scale=..., key=..., channels=...)``.

        Raises:
            ValueError: unknown keys or values out of range.
        """
        if value is None:
            return cls()
        if not isinstance(value, dict) or \
                not set(value) <= {'scale', 'key', 'channels'}:
            raise ValueError(
                f'{where}.inputs must be dict(scale=..., key=..., '
                f'channels=...); got {value!r}.')
        scale = value.get('scale', 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not 0 < scale <= 8:
            raise ValueError(f'{where}.inputs.scale must be a number in '
                             f'(0, 8]; got {scale!r}.')
        key = value.get('key')
        if key is not None and (not isinstance(key, str) or not key or
                                key in ('inputs', 'data_samples')):
            raise ValueError(
                f'{where}.inputs.key must name another key of the batch '
                f'than "inputs" and "data_samples"; got {key!r}.')
        channels = value.get('channels')
        if channels is not None and (isinstance(channels, bool) or
                                     not isinstance(channels, int) or
                                     channels < 1):
            raise ValueError(f'{where}.inputs.channels must be a positive '
                             f'integer; got {channels!r}.')
        return cls(float(scale), key, channels)

    @property
    def rescaled(self) -> bool:
        return self.scale != 1.0


@dataclass
class ModelSlot:
    """One model of a distiller besides its student.

    Args:
        name: the slot's name, as terms name it (``teacher_model=``).
        role: one of :data:`ROLES`.
        module: the model (frozen: ``requires_grad=False``, eval mode).
        inputs: what it sees (:class:`SlotInputs`).
        autocast: its autocast setting (:func:`parse_autocast`).
        checkpoint: where its weights came from (``None`` for an EMA).
        settings: role-specific settings (e.g. an EMA's ``decay``).
    """
    name: str
    role: str
    module: nn.Module
    inputs: SlotInputs = field(default_factory=SlotInputs)
    autocast: Union[bool, torch.dtype] = False
    checkpoint: Optional[str] = None
    settings: Dict[str, Any] = field(default_factory=dict)
    #: the :class:`~mmkd.recorders.ModelRecorder` of what terms read
    recorder: Any = None
    #: maps the student's normalisation to the slot's, or ``None``
    input_converter: Optional[nn.Module] = None
    #: a frozen teacher's per-sample records
    #: (:class:`~mmkd.distillers.teacher_cache.TeacherOutputCache`), or
    #: ``None`` (``cache_outputs=False``, the default)
    cache: Any = None

    def __str__(self) -> str:
        return f'{self.role} slot {self.name!r}'

    @property
    def trainable(self) -> bool:
        """Whether the slot learns (a submodule of the distiller)."""
        return self.role in TRAINABLE_ROLES


@dataclass
class SlotStep:
    """What a trainable slot's :meth:`TrainableSlotModule.slot_loss` sees
    at one training step.

    Args:
        inputs: the batch as the student's data preprocessor made it.
        data_samples: the batch's samples, a copy taken before the
            student's loss ran (the slot may edit it).
        iteration: the Runner's iteration (survives resume).
        student_outputs: ``{module path: output}`` of every student module
            the slot names in :attr:`TrainableSlotModule.student_inputs`,
            from this step's student forward, with their autograd graph
            (gradients of the slot's loss reach the student through them).
    """
    inputs: torch.Tensor
    data_samples: List[Any]
    iteration: int
    student_outputs: Dict[str, Any] = field(default_factory=dict)


class TrainableSlotModule(BaseModule):
    """The base of the modules of auxiliary and augmented slots.

    An MMEngine ``BaseModule``: the Runner's ``init_weights`` reaches it
    (and its children's ``init_cfg``) through the distiller.

    Built by the distiller from the slot's config (``type`` in the
    ``mmkd`` registry, the other keys but ``role`` as arguments) with the
    student as ``student=`` keyword, which a subclass keeps outside its
    submodules (``object.__setattr__``) so that the student's weights are
    saved once, under ``student.``.

    Every parameter of the module must take part in every step's loss
    (DDP runs without ``find_unused_parameters``).
    """
    #: student module paths whose outputs :class:`SlotStep` carries
    student_inputs: Tuple[str, ...] = ()

    def slot_loss(self, step: SlotStep) -> Dict[str, torch.Tensor]:
        """The slot's own losses at this step (keys contain ``'loss'``;
        the distiller logs them as ``<slot name>.<key>``), already
        weighted."""
        raise NotImplementedError


class TeacherEnsemble(list):
    """The records of several teachers that one term reads at once (its
    ``teacher_model`` names a tuple); terms average them
    (:meth:`~mmkd.losses.base.DistillTerm.combine_teachers`)."""


@dataclass(frozen=True)
class TeacherChoice:
    """Which teacher slot(s) a term reads, and when.

    Parsed from a term's ``teacher_model``:

    - ``'r101'``: one slot;
    - ``('r101', 'x101')``: the average of several (an ensemble);
    - ``dict(schedule=[(0, 'r101'), (12, 'x101')], by='epoch')``: stages,
      each from an epoch (or iteration, ``by='iter'``, the default) on;
      a stage may itself be a tuple (an ensemble).

    The stage follows the Runner's epoch/iteration (MMEngine's message
    hub), so every DDP rank agrees and a resumed run continues in the
    stage it stopped in.

    Args:
        stages: ``((start, names), ...)`` sorted by start, the first at 0.
        by: ``'iter'`` or ``'epoch'``.

    Examples:
        >>> distill = dict(
        ...     pkd=dict(type='PearsonFeatureKD', student='neck',
        ...              teacher='neck', teacher_model=dict(
        ...                  schedule=[(0, 'r101'), (12, 'x101')],
        ...                  by='epoch')),
        ...     ld=dict(type='LocalizationDistillation',
        ...             teacher_model=('r101', 'x101')))
    """
    stages: Tuple[Tuple[int, Tuple[str, ...]], ...]
    by: str = 'iter'

    @classmethod
    def parse(cls, value: Any, known: Sequence[str],
              term: str) -> 'TeacherChoice':
        """Validate ``teacher_model`` against the slots ``known``.

        Raises:
            ValueError: an unknown slot name (the message lists the
                names), or a malformed schedule.
        """
        if value is None:
            if len(known) != 1:
                raise ValueError(
                    f'Term {term!r}: the distiller has teachers '
                    f'{list(known)}; say which one the term reads with '
                    'teacher_model="<name>" (or a tuple of names to '
                    'average them).')
            value = known[0]
        by = 'iter'
        if isinstance(value, dict):
            if set(value) - {'schedule', 'by'} or 'schedule' not in value:
                raise ValueError(
                    f'Term {term!r}: teacher_model as a dict is '
                    'dict(schedule=[(start, name), ...], by="iter"|'
                    f'"epoch"); got keys {sorted(value)}.')
            by = value.get('by', 'iter')
            if by not in SCHEDULE_UNITS:
                raise ValueError(f'Term {term!r}: teacher_model.by must be '
                                 f'one of {SCHEDULE_UNITS}; got {by!r}.')
            stages = cls._parse_stages(value['schedule'], term)
        else:
            stages = ((0, cls._names(value, term)), )
        for _, names in stages:
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(
                    f'Term {term!r}: teacher_model names {unknown[0]!r}, '
                    f'which is not a teacher of the distiller; its '
                    f'teachers are {list(known)}.')
        return cls(stages, by)

    @staticmethod
    def _names(value: Any, term: str) -> Tuple[str, ...]:
        names = (value, ) if isinstance(value, str) else value
        if not isinstance(names, (tuple, list)) or not names or \
                not all(isinstance(n, str) for n in names) or \
                len(set(names)) != len(names):
            raise ValueError(
                f'Term {term!r}: teacher_model must be a teacher name, a '
                'tuple of distinct names (their average) or '
                f'dict(schedule=...); got {value!r}.')
        return tuple(names)

    @classmethod
    def _parse_stages(cls, schedule: Any, term: str
                      ) -> Tuple[Tuple[int, Tuple[str, ...]], ...]:
        try:
            stages = [(start, cls._names(names, term))
                      for start, names in schedule]
        except (TypeError, ValueError) as err:
            raise ValueError(
                f'Term {term!r}: teacher_model.schedule must be a list of '
                f'(start, name) pairs; got {schedule!r} ({err}).') from err
        starts = [start for start, _ in stages]
        if not stages or starts[0] != 0 or any(
                isinstance(s, bool) or not isinstance(s, int)
                for s in starts) or starts != sorted(set(starts)):
            raise ValueError(
                f'Term {term!r}: teacher_model.schedule needs increasing '
                f'integer starts, the first 0; got starts {starts}.')
        return tuple(stages)

    @property
    def names(self) -> List[str]:
        """Every slot some stage reads, in order of first use."""
        return list(dict.fromkeys(n for _, names in self.stages
                                  for n in names))

    @property
    def scheduled(self) -> bool:
        return len(self.stages) > 1

    @property
    def ensemble(self) -> bool:
        return any(len(names) > 1 for _, names in self.stages)

    def at(self, iteration: int, epoch: Optional[int]) -> Tuple[str, ...]:
        """The slot name(s) read at this iteration / epoch."""
        now = iteration if self.by == 'iter' else (epoch or 0)
        current = self.stages[0][1]
        for start, names in self.stages:
            if now >= start:
                current = names
        return current
