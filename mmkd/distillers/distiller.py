"""The distiller: one MMEngine model holding a student (any mmdet detector
or mmseg segmentor, config unchanged) and the models it learns from, each
in a *slot* with a role (:mod:`mmkd.slots`): frozen teachers and EMA
teachers of the student.

One training step::

    batch -> student.data_preprocessor -> inputs, data_samples
       |-> each teacher some term reads at this step (eval, no_grad, its
       |   own inputs, stops after the deepest module its terms read)
       |-> student.loss(inputs, data_samples) -> task losses
       '-> every term(student records, its teacher's records)
                                              -> loss_distill_<name>
"""
import copy
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.model import ModuleDict as InitModuleDict
from mmengine.structures import BaseDataElement

from ..losses.adversarial import AdversarialTerm
from ..losses.base import DistillTerm
from ..recorders import (ModelRecorder, ReadSpec, StopForward,
                         recorded_tensors, require_module)
from ..registry import MODELS
from ..slots import (TRAINABLE_ROLES, ModelSlot, SlotInputs, SlotStep,
                     TeacherChoice, TeacherEnsemble, parse_autocast,
                     slot_autocast)
from ..utils.validation import check_image_size
from .adversarial_step import adversarial_train_step
from .ema import (STATE_PREFIX, UPDATES_KEY, ema_momentum, ema_update,
                  make_ema_copy)
from .nonfinite import NonFiniteLossGuard
from .probe import make_probe_batch, probe_device, probing
from .slot_inputs import (ExtraInputsPreprocessor, copy_samples,
                          extra_inputs_of, rescale_batch)
from .teacher import (build_frozen_teacher, build_model_in_scope,
                      check_ema_decay, check_teacher_reference,
                      current_scope)
from .teacher_cache import TeacherOutputCache, check_batch_first
from .teacher_inputs import TeacherInputConverter
from .trainable import (build_trainable_slot, detach_record,
                        load_peer_checkpoint, slot_losses)

#: the slot name of the short form ``teacher=dict(...)``
DEFAULT_TEACHER = 'teacher'
#: how terms name the student (``student_model=``, ``teacher_model=``)
STUDENT = 'student'
#: the attributes of the one-teacher form
ONE_TEACHER_ATTRS = ('teacher', 'teacher_recorder', 'teacher_input_converter',
                     'teacher_autocast', 'teacher_checkpoint')


@MODELS.register_module()
class Distiller(BaseModel):
    """Distil one or several teachers into a student with named terms.

    Every teacher is frozen (``requires_grad=False``), in eval mode that
    ``model.train()`` cannot flip (it is not a submodule), runs under
    ``torch.no_grad()``, once a step and only when some term reads it at
    that step, only as deep as the deepest module those terms read, never
    computes losses, and is kept out of ``state_dict()``, checkpoints, the
    optimizer and DDP's gradient reducer; an EMA teacher is saved with the
    state dict (resume is exact) and never exported. Teachers follow
    ``.to()``, ``.cuda()`` and ``.half()``. ``predict``/``tensor`` modes
    go straight to the student, so val and test evaluate the student.

    Args:
        student: the student model config (e.g. ``{{_base_.model}}``),
            built in the config's ``default_scope``.
        teacher: ``dict(config=..., checkpoint=...)``: the teacher config
            (a file, ``mmdet::``/``mmseg::`` path, full config or model
            dict) and its weights (local path or URL). Optional keys:
            ``autocast`` (``True``, ``'float16'`` or ``'bfloat16'`` runs
            it under ``torch.autocast``; default ``False``: float32, even
            when training with ``--amp``; see
            :func:`~mmkd.slots.parse_autocast`), ``inputs`` (its own
            resolution or batch key, :class:`~mmkd.slots.SlotInputs`),
            ``strip_prefix``, ``cache_outputs`` (``True``: the teacher runs
            once per distinct input and its records are reused in later
            epochs, for deterministic train pipelines; see
            :mod:`~mmkd.distillers.teacher_cache`). The short form of
            ``teachers=dict(
            teacher=...)``.
        distill: ``{name: term config}``; each term becomes a
            ``loss_distill_<name>`` entry of the loss dict. With several
            teachers each term names the one it reads: ``teacher_model=``
            a name, a tuple of names (their average) or a schedule
            (:class:`~mmkd.slots.TeacherChoice`).
        teachers: ``{name: teacher config}`` instead of ``teacher``: each
            a frozen teacher as above, or ``dict(role='ema', decay=0.999)``
            (an EMA teacher of the student, no checkpoint; see
            :mod:`mmkd.distillers.ema`).
        probe_size: (H, W) of the dummy input used at build time to infer
            adaptor channels and check shapes. Default (256, 256).
        nonfinite_loss: what a training step does when a loss is NaN or
            infinite, checked before the optimizer step: ``'stop'``
            (default) raises an error naming the loss and the iteration;
            ``'skip'`` skips the optimizer step and counts it in the log
            (``nonfinite_skipped``), for mixed precision runs that expect
            occasional overflow. See :mod:`mmkd.distillers.nonfinite`.
        data_preprocessor: ignored when ``None`` (the student's own data
            preprocessor is used, so the user's config is unchanged).
        init_cfg: MMEngine init config of the distiller.

    Examples:
        >>> model = dict(
        ...     type='mmkd.Distiller',
        ...     student={{_base_.model}},
        ...     teachers=dict(
        ...         r101=dict(config='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
        ...                   checkpoint='https://.../gfl_r101.pth'),
        ...         x101=dict(config='...', checkpoint='...',
        ...                   inputs=dict(scale=1.5))),
        ...     distill=dict(
        ...         neck=dict(type='PearsonFeatureKD', student='neck',
        ...                   teacher='neck', teacher_model='x101'),
        ...         ld=dict(type='LocalizationDistillation',
        ...                 teacher_model=('r101', 'r101_ms'))))
    """

    def __init__(self,
                 student: dict,
                 teacher: Optional[dict] = None,
                 distill: Optional[Dict[str, dict]] = None,
                 teachers: Optional[Dict[str, dict]] = None,
                 probe_size: Tuple[int, int] = (256, 256),
                 nonfinite_loss: str = 'stop',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        slot_configs = self._slot_configs(teacher, teachers)
        for name, cfg in slot_configs.items():  # fail before building
            check_teacher_reference(cfg, self._where(name))
        probe_size = check_image_size(probe_size, 'probe_size')
        self.nonfinite_guard = NonFiniteLossGuard(nonfinite_loss)
        scope = current_scope()
        self.student = build_model_in_scope(student, scope)
        if data_preprocessor is None:
            self.data_preprocessor = self.student.data_preprocessor
        # Whatever the teachers, adaptors and probe draw from the RNG, the
        # student (built above, initialised later) sees the same random
        # stream as when trained alone with the same seed.
        with torch.random.fork_rng(devices=[]):
            self._build_slots_and_terms(slot_configs, distill, scope,
                                        tuple(probe_size), student)

    # -- building -----------------------------------------------------------
    @staticmethod
    def _slot_configs(teacher: Optional[dict],
                      teachers: Optional[Dict[str, dict]]
                      ) -> Dict[str, dict]:
        if (teacher is None) == (teachers is None):
            raise ValueError(
                'Give the distiller teacher=dict(config=..., checkpoint='
                '...) or teachers=dict(<name>=dict(...), ...), exactly one '
                'of them; got ' + ('both.' if teacher is not None else
                                   'neither.'))
        if teacher is not None:
            return {DEFAULT_TEACHER: teacher}
        if not isinstance(teachers, dict) or not teachers:
            raise ValueError(
                'teachers must be a non-empty dict of named teachers, e.g. '
                'teachers=dict(r101=dict(config=..., checkpoint=...)); got '
                f'{teachers!r}.')
        for name in teachers:
            if not isinstance(name, str) or not name.isidentifier() or \
                    name == 'student':
                raise ValueError(
                    f'Teacher name {name!r} must be a Python identifier '
                    '(letters, digits, _) other than "student".')
        return dict(teachers)

    @staticmethod
    def _where(name: str) -> str:
        """How the config names a slot, for messages."""
        return 'teacher' if name == DEFAULT_TEACHER else f'teachers.{name}'

    def _build_slots_and_terms(self, slot_configs: Dict[str, dict],
                               distill: Optional[Dict[str, dict]],
                               scope: Optional[str],
                               probe_size: Tuple[int, int],
                               student_cfg: dict) -> None:
        # The slots dict is not a submodule: frozen teachers stay out of
        # state_dict, parameters(), train() and DDP; EMA teachers enter
        # the state dict through _save_to_state_dict only; trainable
        # slots are registered under trainable_slots.
        slots = {name: self._build_slot(name, cfg, scope, student_cfg)
                 for name, cfg in slot_configs.items()}
        object.__setattr__(self, 'slots', slots)
        self.trainable_slots = InitModuleDict({
            name: slot.module for name, slot in slots.items()
            if slot.trainable})
        self.distill_terms = self._build_terms(distill)
        self.student_recorder = ModelRecorder(
            self.student, self._specs_read_from(STUDENT), 'student')
        for name, slot in self.slots.items():
            specs = self._specs_read_from(name)
            if not specs and not slot.trainable:
                warnings.warn(f'Teacher {name!r} is read by no '
                              'distillation term, so it never runs; name '
                              'it in a term\'s teacher_model or remove it.')
            slot.recorder = ModelRecorder(
                slot.module, specs, f'{slot.role} {name!r}' if
                slot.trainable or len(self.slots) > 1 else 'teacher')
        keys = sorted({s.inputs.key for s in self.slots.values()
                       if s.inputs.key})
        if keys:
            self.data_preprocessor = ExtraInputsPreprocessor(
                self.data_preprocessor, keys)
        self._iteration = self._step_iteration = 0
        self._probe_and_setup(probe_size)

    def _specs_read_from(self, model: str) -> List[ReadSpec]:
        """What the terms read from ``model`` (``'student'`` or a slot):
        their student side where it is the term's student, their teacher
        side where it is (one of) the term's teacher(s), and, for the
        student, the outputs the auxiliary/augmented slots take in."""
        specs = []
        for term in self.distill_terms.values():
            if term.student_model == model:
                specs.append(term.student_spec)
            if model in term.teacher_choice.names:
                specs.append(term.teacher_spec)
        if model == STUDENT:
            specs += [ReadSpec(path) for slot in self.slots.values()
                      if slot.trainable for path in getattr(
                          slot.module, 'student_inputs', ())]
        return specs

    def _build_slot(self, name: str, cfg: dict, scope: Optional[str],
                    student_cfg: dict) -> ModelSlot:
        where = self._where(name)
        role = cfg.get('role', 'frozen')
        if role in TRAINABLE_ROLES:
            slot = build_trainable_slot(name, cfg, self.student, student_cfg,
                                        scope, where)
            if role == 'peer':
                slot.input_converter = TeacherInputConverter.between(
                    self.data_preprocessor, slot.module.data_preprocessor)
            return slot
        inputs = SlotInputs.parse(cfg.get('inputs'), where)
        autocast = parse_autocast(cfg.get('autocast', False), where)
        if role == 'ema':
            module = make_ema_copy(self.student)
            settings = dict(decay=check_ema_decay(cfg.get('decay', 0.999),
                                                  where), updates=0)
            slot = ModelSlot(name, role, module, inputs, autocast,
                             settings=settings)
        else:
            module = build_frozen_teacher(cfg['config'], cfg.get(
                'checkpoint'), scope, cfg.get('strip_prefix'), where=where)
            slot = ModelSlot(name, role, module, inputs, autocast,
                             checkpoint=cfg.get('checkpoint'))
            if cfg.get('cache_outputs', False):
                slot.cache = TeacherOutputCache(name)
        if not inputs.key:  # None when both normalise images alike
            slot.input_converter = TeacherInputConverter.between(
                self.data_preprocessor, module.data_preprocessor)
        return slot

    def _build_terms(self, distill: Optional[Dict[str, dict]]
                     ) -> nn.ModuleDict:
        if distill is None and self._trainable_names():
            distill = {}  # e.g. NetAug: the augmented slot's loss alone
        if not isinstance(distill, dict) or not (
                distill or self._trainable_names()):
            raise ValueError('distill must be a non-empty dict of named '
                             'terms, e.g. dict(fpn=dict(type='
                             '"FeatureImitation", student="neck", '
                             'teacher="neck")).')
        modules = {name: dict(self._model(name).named_modules())
                   for name in self._model_names()}
        terms = nn.ModuleDict()
        for name, cfg in distill.items():
            if not name.isidentifier():
                raise ValueError(f'Term name {name!r} must be a Python '
                                 'identifier (letters, digits, _).')
            cfg = dict(cfg)
            student_model = self._parse_student_model(
                cfg.pop('student_model', STUDENT), name)
            choice = self._parse_teacher_model(
                cfg.pop('teacher_model', None), student_model, name)
            try:
                term = MODELS.build(dict(cfg, _scope_='mmkd'))
            except (TypeError, KeyError, ValueError) as err:
                raise type(err)(f'Term {name!r} ({cfg.get("type")}): '
                                f'{err}') from err
            if not isinstance(term, DistillTerm):
                raise TypeError(f'Term {name!r}: {type(term).__name__} is '
                                'not a DistillTerm.')
            term.name = name
            if choice.ensemble and not term.teacher_ensembles:
                raise ValueError(
                    f'Term {name!r} ({type(term).__name__}) reads one '
                    'teacher at a time; its teacher_model averages '
                    f'{[n for _, ns in choice.stages for n in ns]}. Write '
                    'one term per teacher.')
            term.teacher_choice = choice
            term.student_model = student_model
            require_module(modules[student_model], term.student_spec.path,
                           self._label(student_model), name,
                           root=term.student_spec.record == 'calls')
            for slot in choice.names:
                require_module(modules[slot], term.teacher_spec.path,
                               'teacher' if len(self.slots) == 1 else
                               self._label(slot), name,
                               root=term.teacher_spec.record == 'calls')
            term.bind_models(self._model(student_model),
                             [self._slot(n) for n in choice.names])
            terms[name] = term
        return terms

    # -- the models terms name ------------------------------------------------
    def _model_names(self) -> List[str]:
        return [STUDENT] + list(self.slots)

    def _model(self, name: str) -> nn.Module:
        return self.student if name == STUDENT else self.slots[name].module

    def _slot(self, name: str) -> ModelSlot:
        """The slot ``name``; the student as a slot of role 'student'
        when a term reads it as its teacher (online and self
        distillation)."""
        if name != STUDENT:
            return self.slots[name]
        return ModelSlot(STUDENT, STUDENT, self.student,
                         recorder=self.__dict__.get('student_recorder'))

    def _recorder(self, name: str) -> ModelRecorder:
        return self.student_recorder if name == STUDENT else \
            self.slots[name].recorder

    def _label(self, name: str) -> str:
        """How messages name a model."""
        return STUDENT if name == STUDENT else \
            f'{self.slots[name].role} {name!r}'

    def _trainable_names(self) -> List[str]:
        return [n for n, s in self.slots.items() if s.trainable]

    def _learns(self, name: str) -> bool:
        """Whether the model ``name`` has gradients (then a term reading
        it on its teacher side reads it detached)."""
        return name == STUDENT or self.slots[name].trainable

    def _parse_student_model(self, value: Any, term: str) -> str:
        """A term's ``student_model``: ``'student'`` (default) or a
        trainable slot."""
        allowed = [STUDENT] + self._trainable_names()
        if value not in allowed:
            raise ValueError(
                f'Term {term!r}: student_model must name a model that '
                f'learns, one of {allowed}; got {value!r}.')
        return value

    def _parse_teacher_model(self, value: Any, student_model: str,
                             term: str) -> TeacherChoice:
        """A term's ``teacher_model`` (see :class:`TeacherChoice`); with
        trainable slots the student may be named too. Without it, the one
        model besides the term's student that is not an auxiliary or
        augmented slot."""
        known = list(self.slots) + (
            [STUDENT] if self._trainable_names() else [])
        if value is None:
            others = [n for n in known if n != student_model and (
                n == STUDENT or self.slots[n].role not in
                ('auxiliary', 'augmented'))]
            if len(others) > 1 or not others:
                raise ValueError(
                    f'Term {term!r}: the distiller has teachers '
                    f'{others or known} for its student model '
                    f'{student_model!r}; say which one the term reads with '
                    'teacher_model="<name>" (or a tuple of names to '
                    'average them).')
            value = others[0]
        choice = TeacherChoice.parse(value, known, term)
        # an auxiliary slot may teach itself: ONE's ensemble (one module
        # path of the slot) teaches its branches (others)
        own_heads = student_model != STUDENT and \
            self.slots[student_model].role == 'auxiliary'
        if student_model in choice.names and not own_heads:
            raise ValueError(
                f'Term {term!r}: {student_model!r} is both its student '
                f'and its teacher; name another teacher_model (one of '
                f'{[n for n in known if n != student_model]}).')
        return choice


    @torch.no_grad()
    def _probe_and_setup(self, size: Tuple[int, int]) -> None:
        """Run the student and every teacher once on a dummy batch; set up
        and dry-run every term, so that shape, level and mask errors
        surface at build time.

        Runs where :func:`probe_device` says (the GPU under NCCL), then
        moves everything back to where it was built."""
        built_on = next(self.student.parameters()).device
        device = probe_device()
        self.to(device)
        try:
            self._probe_on(device, size)
        finally:
            self.to(built_on)
        for slot in self.slots.values():
            slot.recorder.stop_when_complete = not slot.trainable

    def _probe_on(self, device: torch.device, size: Tuple[int, int]) -> None:
        inputs, samples = make_probe_batch(self.student, size, device=device)
        # the teachers run first in training; a student loss may edit the
        # ground truth in place (Fast R-CNN pops its proposals' boxes)
        teacher_samples = copy.deepcopy(samples)
        slot_samples = {name: copy.deepcopy(samples)
                        for name in self._trainable_names()}
        extra_inputs = self._probe_extra_inputs(inputs)
        self.student_recorder.active = True
        try:
            with probing(self.student):
                self.student.loss(inputs, samples)
        except Exception as err:
            raise RuntimeError(
                f'The student ({type(self.student).__name__}) failed to '
                f'compute its losses on the build-time probe batch of size '
                f'{size} (one gt box per image, with the masks, maps or '
                f'proposals its heads train on): {err}. If the model needs a '
                'larger or differently shaped input, set the distiller\'s '
                'probe_size.') from err
        finally:
            self.student_recorder.active = False
        for name, samples_copy in slot_samples.items():
            slot = self.slots[name]
            try:
                with probing(slot.module):
                    self._trainable_slot_loss(slot, inputs, samples_copy, 0)
            except Exception as err:
                raise RuntimeError(
                    f'The {slot} ({type(slot.module).__name__}) failed to '
                    f'compute its losses on the build-time probe batch of '
                    f'size {size}: {err}. Set the distiller\'s probe_size to '
                    'an input size every model accepts.') from err
        for slot in self.slots.values():
            if not slot.recorder.specs or slot.trainable:
                continue
            try:
                self._run_slot(slot, inputs, teacher_samples, extra_inputs,
                               use_cache=False)
            except Exception as err:
                raise RuntimeError(
                    f'The teacher {slot.name!r} '
                    f'({type(slot.module).__name__}) failed on the '
                    f'build-time probe batch of size {size}: {err}. Set '
                    'the distiller\'s probe_size to an input size the '
                    'student and the teachers accept.') from err
            slot.recorder.expected_calls = slot.recorder.call_counts()
            self._check_teacher_records_finite(slot)
            if slot.cache is not None:
                for spec, values in slot.recorder.records().items():
                    for value in values:
                        check_batch_first(value, inputs.shape[0],
                                          f'{spec} of teacher {slot.name!r}')
        self._give_inputs(inputs)
        for name, term in self.distill_terms.items():
            self._set_up_term(name, term, samples, device)
        self._give_inputs(None)
        self._clear_records()

    def _clear_records(self) -> None:
        self.student_recorder.clear()
        for slot in self.slots.values():
            slot.recorder.clear()

    def _probe_extra_inputs(self, inputs: torch.Tensor
                            ) -> Dict[str, List[torch.Tensor]]:
        """Dummy raw images (mid-grey) of every batch key a teacher reads,
        with the channels its preprocessor normalises."""
        extra = {}
        for slot in self.slots.values():
            key = slot.inputs.key
            if not key:
                continue
            channels = slot.inputs.channels or int(getattr(
                slot.module.data_preprocessor, 'mean', torch.zeros(3)
            ).numel())
            extra[key] = [
                inputs.new_full((channels, ) + tuple(inputs.shape[-2:]),
                                128.) for _ in range(inputs.shape[0])]
        return extra

    def _set_up_term(self, name: str, term: DistillTerm,
                     samples: Sequence[BaseDataElement],
                     device: torch.device) -> None:
        student = term.parse_record(self._recorder(term.student_model).get(
            term.student_spec, name), 'student')
        parsed = {slot: term.parse_record(self._teacher_record(
            slot, term.teacher_spec, name), 'teacher')
            for slot in term.teacher_choice.names}
        first, *others = term.teacher_choice.names
        term.setup(student, parsed[first], self._model(term.student_model))
        for other in others:
            term.check_teacher_agreement(student, parsed[first],
                                         parsed[other], other)
        term.to(device)  # adaptors are built on the CPU
        for _, names in term.teacher_choice.stages:
            teacher = parsed[names[0]] if len(names) == 1 else \
                term.combine_teachers([parsed[n] for n in names])
            try:
                with probing(term):
                    term.compute(student, teacher, samples)
            except Exception as err:
                raise RuntimeError(
                    f'Term {name!r} ({type(term).__name__}) failed on the '
                    f'build-time probe batch (teachers {list(names)}): '
                    f'{err}') from err

    def _check_teacher_records_finite(self, slot: ModelSlot) -> None:
        """A teacher giving NaN/inf on the probe is an error at build."""
        counts = slot.recorder.call_counts()
        for spec in slot.recorder.specs:
            if not counts[spec]:
                continue  # not executed: the term's own check names it
            levels = recorded_tensors(slot.recorder.get(spec))
            if all(bool(torch.isfinite(t).all()) for t in levels):
                continue
            bad = [name for name, value in
                   list(slot.module.named_parameters()) +
                   list(slot.module.named_buffers())
                   if value.is_floating_point()
                   and not bool(torch.isfinite(value).all())]
            raise ValueError(
                f'The teacher checkpoint {slot.checkpoint!r} gives '
                f'NaN/inf at {spec} on the build-time probe batch, before '
                'any training. Non-finite teacher weights or buffers '
                f'({len(bad)}): {bad[:10]}. Use a checkpoint the teacher '
                'was trained to, not one saved after its loss diverged.')

    # -- the one-teacher view (``teacher=dict(...)``) -------------------------
    def _sole_slot(self) -> ModelSlot:
        if len(self.slots) != 1:
            raise AttributeError(self._several_teachers_message())
        return next(iter(self.slots.values()))

    def _several_teachers_message(self) -> str:
        return (f'The distiller has teachers {list(self.slots)}: use '
                'distiller.slots[<name>] (module, recorder, inputs, '
                'autocast) instead of its one-teacher attributes.')

    def __getattr__(self, name: str):
        # a property's AttributeError lands here: keep its message
        if name in ONE_TEACHER_ATTRS and 'slots' in self.__dict__:
            raise AttributeError(self._several_teachers_message())
        return super().__getattr__(name)

    @property
    def teacher(self) -> nn.Module:
        """The teacher model, when there is one."""
        return self._sole_slot().module

    @property
    def teacher_recorder(self) -> ModelRecorder:
        return self._sole_slot().recorder

    @property
    def teacher_input_converter(self) -> Optional[nn.Module]:
        return self._sole_slot().input_converter

    @property
    def teacher_autocast(self) -> Union[bool, torch.dtype]:
        return self._sole_slot().autocast

    @property
    def teacher_checkpoint(self) -> Optional[str]:
        return self._sole_slot().checkpoint

    # -- nn.Module plumbing for the hidden slots ------------------------------
    def _apply(self, fn, *args, **kwargs):
        """Move/cast the teachers with the distiller (``.to``, ``.cuda``)."""
        super()._apply(fn, *args, **kwargs)
        for slot in self.slots.values():
            if slot.trainable:  # a submodule: moved above
                continue
            slot.module._apply(fn, *args, **kwargs)
            if slot.input_converter is not None:
                slot.input_converter._apply(fn, *args, **kwargs)
        return self

    def __deepcopy__(self, memo: dict) -> 'Distiller':
        """Copy everything but the teachers, which the copy shares.

        EMA hooks (mmdet's ``EMAHook``, used by RTMDet and YOLOX configs)
        deep-copy the model; a second frozen teacher would only cost memory.
        The recorders are shared too: the hooks on the shared teachers, and
        the hooks the copied student modules carry over, report to them,
        and every step clears them before and after use."""
        memo[id(self.slots)] = self.slots
        memo[id(self.student_recorder)] = self.student_recorder
        for slot in self.slots.values():
            # a trainable slot's module is a submodule: the copy has its
            # own (EMA hooks average it); its records go to the shared
            # recorder, as the copied student's do
            for shared in (slot, slot.recorder, slot.input_converter) + (
                    () if slot.trainable else (slot.module, )):
                memo[id(shared)] = shared
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for key, value in self.__dict__.items():
            object.__setattr__(copied, key, copy.deepcopy(value, memo))
        return copied

    def train(self, mode: bool = True) -> 'Distiller':
        super().train(mode)
        for slot in self.slots.values():
            if not slot.trainable:
                slot.module.eval()
        return self

    def init_weights(self) -> None:
        """MMEngine's initialisation of the student and the trainable
        slots (their ``init_cfg``), then the peers' checkpoints."""
        super().init_weights()
        for slot in self.slots.values():
            load_peer_checkpoint(slot)

    def _ema_slots(self) -> List[ModelSlot]:
        return [s for s in self.slots.values() if s.role == 'ema']

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        """The distiller's own state, plus every EMA teacher's weights
        and update count under ``ema_teachers.<name>.``."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for slot in self._ema_slots():
            where = f'{prefix}{STATE_PREFIX}{slot.name}.'
            for key, value in slot.module.state_dict(
                    keep_vars=keep_vars).items():
                destination[where + key] = value
            destination[where + UPDATES_KEY] = torch.tensor(
                slot.settings['updates'])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Restore the EMA teachers (see :meth:`_save_to_state_dict`)."""
        for slot in self._ema_slots():
            where = f'{prefix}{STATE_PREFIX}{slot.name}.'
            own = {key[len(where):]: state_dict.pop(key)
                   for key in list(state_dict) if key.startswith(where)}
            updates = own.pop(UPDATES_KEY, None)
            if updates is None:
                missing_keys.append(where + UPDATES_KEY)
                continue
            result = slot.module.load_state_dict(own, strict=False)
            missing_keys.extend(where + k for k in result.missing_keys)
            unexpected_keys.extend(where + k for k in result.unexpected_keys)
            slot.settings['updates'] = int(updates)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # -- forward --------------------------------------------------------------
    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor',
                extra_inputs: Optional[Dict[str, list]] = None):
        if mode == 'loss':
            return self.loss(inputs, data_samples, extra_inputs)
        return self.student(inputs, data_samples, mode=mode)

    def _current_iteration(self) -> int:
        """The Runner's iteration (survives resume), else a local count."""
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter')
        return self._iteration if iteration is None else int(iteration)

    @staticmethod
    def _current_epoch() -> Optional[int]:
        epoch = MessageHub.get_current_instance().get_info('epoch')
        return None if epoch is None else int(epoch)

    @torch.no_grad()
    def _run_slot(self, slot: ModelSlot, inputs: torch.Tensor,
                  data_samples: Sequence[BaseDataElement],
                  extra_inputs: Optional[Dict[str, list]],
                  use_cache: bool = True) -> None:
        """One teacher's forward on its inputs, recording what its terms
        read (it stops once they are recorded). A teacher with
        ``cache_outputs=True`` runs only on the samples it has not seen
        (:mod:`~mmkd.distillers.teacher_cache`); ``use_cache=False``
        (the probe) runs it on the whole batch and caches nothing."""
        if slot.inputs.key:
            raw = extra_inputs_of(extra_inputs, slot.inputs.key, slot.name)
            data = slot.module.data_preprocessor(
                dict(inputs=raw, data_samples=copy_samples(data_samples)),
                False)
            inputs, data_samples = data['inputs'], data['data_samples']
        elif slot.input_converter is not None:
            inputs = slot.input_converter(inputs)
        if slot.inputs.rescaled:
            inputs, data_samples = rescale_batch(inputs, data_samples,
                                                 slot.inputs.scale)
        if slot.cache is None or not use_cache:
            self._forward_slot(slot, inputs, data_samples)
            return
        keys = slot.cache.keys(inputs, data_samples)
        todo = slot.cache.missing(keys)
        if todo:
            self._forward_slot(slot, inputs[todo],
                               [data_samples[i] for i in todo])
            slot.cache.store([keys[i] for i in todo], slot.recorder.records())
        slot.recorder.load_records(
            slot.cache.batch(keys, inputs.device, fresh=len(todo)))

    @staticmethod
    def _forward_slot(slot: ModelSlot, inputs: torch.Tensor,
                      data_samples: Sequence[BaseDataElement]) -> None:
        """The slot's tensor-mode forward, recording what terms read."""
        slot.recorder.active = True
        try:
            with slot_autocast(inputs.device.type, slot.autocast):
                slot.module(inputs, data_samples, mode='tensor')
        except StopForward:
            pass  # every module the terms read has run
        finally:
            slot.recorder.active = False

    def run_teachers(self, inputs: torch.Tensor,
                     data_samples: Sequence[BaseDataElement],
                     extra_inputs: Optional[Dict[str, list]] = None,
                     names: Optional[Sequence[str]] = None) -> None:
        """Clear every teacher's records and run the ``names`` frozen and
        EMA teachers (default: every one some term reads) on this batch;
        trainable slots run in :meth:`loss`, after the student."""
        for name, slot in self.slots.items():
            slot.recorder.clear()
            if slot.recorder.specs and not slot.trainable and (
                    names is None or name in names):
                self._run_slot(slot, inputs, data_samples, extra_inputs)

    def _trainable_slot_loss(self, slot: ModelSlot, inputs: torch.Tensor,
                             data_samples: List[BaseDataElement],
                             iteration: int) -> Dict[str, torch.Tensor]:
        """A trainable slot's own losses, recording what terms read from
        it: a peer's task loss on the student's batch (normalised as the
        peer's preprocessor would), an auxiliary/augmented module's
        :meth:`~mmkd.slots.TrainableSlotModule.slot_loss`."""
        slot.recorder.clear()
        slot.recorder.active = True
        try:
            if slot.role == 'peer':
                if slot.input_converter is not None:
                    inputs = slot.input_converter(inputs)
                losses = slot.module.loss(inputs, data_samples)
            else:
                paths = getattr(slot.module, 'student_inputs', ())
                losses = slot.module.slot_loss(SlotStep(
                    inputs, data_samples, iteration,
                    {path: self.student_recorder.get(ReadSpec(path),
                                                     slot.name)
                     for path in paths}))
        finally:
            slot.recorder.active = False
        return slot_losses(slot.name, losses)

    def _teacher_record(self, name: str, spec: ReadSpec, term: str) -> Any:
        """What a term reads from model ``name`` on its teacher side:
        detached when that model learns (never a gradient into the model
        that plays teacher)."""
        record = self._recorder(name).get(spec, term)
        return detach_record(record) if self._learns(name) else record

    @torch.no_grad()
    def _update_ema_teachers(self, iteration: int) -> None:
        """Bring every EMA teacher to ``iteration + 1`` updates (see
        :mod:`mmkd.distillers.ema`): the copy of the student at step 0,
        then one update per optimizer step taken."""
        for slot in self._ema_slots():
            done, target = slot.settings['updates'], iteration + 1
            if done >= target:
                continue
            if done == 0 and target > 1:
                warnings.warn(
                    f'EMA teacher {slot.name!r}: no saved state at '
                    f'iteration {iteration} (a checkpoint without it?); it '
                    'starts again as a copy of the student.')
            alpha = 0.0 if done == 0 else ema_momentum(
                target - 1, slot.settings['decay'])
            ema_update(slot.module, self.student, alpha)
            slot.settings['updates'] = target

    def parse_losses(self, losses: Dict[str, torch.Tensor]
                     ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Sum the losses and check them before the optimizer step.

        Both single-process training and MMEngine's DDP wrapper call this
        between the forward pass and ``optim_wrapper.update_params``, so a
        non-finite loss stops (or skips) the step before any weight
        changes; see ``nonfinite_loss``.
        """
        loss, log_vars = super().parse_losses(losses)
        # numbered from 1, as MMEngine's log lines number iterations
        replacement = self.nonfinite_guard.check(
            self, loss, log_vars, self._step_iteration + 1)
        if replacement is not None:
            loss = replacement
        if self.nonfinite_guard.policy == 'skip':
            log_vars['nonfinite_skipped'] = torch.tensor(
                float(self.nonfinite_guard.skipped))
        return loss, log_vars

    def _give_inputs(self, inputs: Optional[torch.Tensor]) -> None:
        """Adversarial terms condition on the images (``None``: forget)."""
        for term in self.adversarial_terms().values():
            if inputs is None:
                term.forget()
            else:
                term.set_inputs(inputs)

    def adversarial_terms(self) -> Dict[str, AdversarialTerm]:
        """The terms that own a discriminator, by name."""
        return {name: term for name, term in self.distill_terms.items()
                if isinstance(term, AdversarialTerm)}

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper) -> Dict[str, torch.Tensor]:
        """MMEngine's train step; with adversarial terms, the
        discriminators' update then the student's, from one forward pass
        (see :mod:`mmkd.distillers.adversarial_step`).
        """
        if not self.adversarial_terms():
            return super().train_step(data, optim_wrapper)
        return adversarial_train_step(self, data, optim_wrapper)

    def teachers_read(self, iteration: int,
                      epoch: Optional[int]) -> Dict[str, Tuple[str, ...]]:
        """``{term: teacher names}`` each term reads at this step."""
        return {name: term.teacher_choice.at(iteration, epoch)
                for name, term in self.distill_terms.items()}

    def loss(self, inputs: torch.Tensor,
             data_samples: List[BaseDataElement],
             extra_inputs: Optional[Dict[str, list]] = None
             ) -> Dict[str, Union[torch.Tensor, List[torch.Tensor]]]:
        """The student's task losses plus one ``loss_distill_<name>`` each
        term."""
        iteration = self._step_iteration = self._current_iteration()
        reads = self.teachers_read(iteration, self._current_epoch())
        active = {n for names in reads.values() for n in names}
        self._update_ema_teachers(iteration)
        self.student_recorder.clear()
        self.run_teachers(inputs, data_samples, extra_inputs, active)
        # the student's loss may edit the ground truth in place
        slot_samples = {name: copy_samples(data_samples)
                        for name in self._trainable_names()}
        self.student_recorder.active = True
        try:
            losses = self.student.loss(inputs, data_samples)
        finally:
            self.student_recorder.active = False
        for name, samples in slot_samples.items():
            losses.update(self._trainable_slot_loss(
                self.slots[name], inputs, samples, iteration))
        self._give_inputs(inputs)
        for name, term in self.distill_terms.items():
            records = [self._teacher_record(n, term.teacher_spec, name)
                       for n in reads[name]]
            losses[f'loss_distill_{name}'] = term(
                self._recorder(term.student_model).get(term.student_spec,
                                                       name),
                records[0] if len(records) == 1 else
                TeacherEnsemble(records), data_samples, iteration)
        self._clear_records()
        self._iteration += 1
        return losses
