"""The single-teacher distiller: one MMEngine model holding a student (any
mmdet detector or mmseg segmentor, config unchanged) and a frozen teacher.

One training step::

    batch -> student.data_preprocessor -> inputs, data_samples
       |-> teacher (eval, no_grad, stops after the deepest module read)
       |-> student.loss(inputs, data_samples) -> task losses
       '-> every term(student records, teacher records) -> loss_distill_<name>
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from ..losses.adversarial import AdversarialTerm
from ..losses.base import DistillTerm
from ..recorders import (ModelRecorder, StopForward, recorded_tensors,
                         require_module)
from ..registry import MODELS
from ..utils.validation import check_image_size
from .adversarial_step import adversarial_train_step
from .nonfinite import NonFiniteLossGuard
from .probe import make_probe_batch, probe_device, probing
from .teacher import (build_frozen_teacher, build_model_in_scope,
                      check_teacher_reference, current_scope,
                      parse_teacher_autocast, teacher_autocast)
from .teacher_inputs import TeacherInputConverter


@MODELS.register_module()
class Distiller(BaseModel):
    """Distil a frozen teacher into a student with named loss terms.

    The teacher is frozen (``requires_grad=False``), in eval mode that
    ``model.train()`` cannot flip (it is not a submodule), runs under
    ``torch.no_grad()`` and only as deep as the deepest module any term
    reads, never computes losses, and is kept out of ``state_dict()``,
    checkpoints, the optimizer and DDP's gradient reducer. It still follows
    ``.to()``, ``.cuda()`` and ``.half()``. ``predict``/``tensor`` modes go
    straight to the student, so val and test evaluate the student.

    Args:
        student: the student model config (e.g. ``{{_base_.model}}``),
            built in the config's ``default_scope``.
        teacher: ``dict(config=..., checkpoint=...)``: the teacher config
            (a file, ``mmdet::``/``mmseg::`` path, full config or model
            dict) and its weights (local path or URL), required.
            ``autocast=True`` (or ``'float16'``/``'bfloat16'``) runs the
            teacher under ``torch.autocast`` (cheaper on GPUs with
            float16/bfloat16 tensor cores); default ``False``: float32,
            even when training with ``--amp``.
            See :func:`~mmkd.distillers.teacher.parse_teacher_autocast`.
        distill: ``{name: term config}``; each term becomes a
            ``loss_distill_<name>`` entry of the loss dict.
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
    """

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 distill: Dict[str, dict],
                 probe_size: Tuple[int, int] = (256, 256),
                 nonfinite_loss: str = 'stop',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        check_teacher_reference(teacher)  # fail before building anything
        probe_size = check_image_size(probe_size, 'probe_size')
        self.nonfinite_guard = NonFiniteLossGuard(nonfinite_loss)
        scope = current_scope()
        self.student = build_model_in_scope(student, scope)
        if data_preprocessor is None:
            self.data_preprocessor = self.student.data_preprocessor
        # Whatever the teacher, adaptors and probe draw from the RNG, the
        # student (built above, initialised later) sees the same random
        # stream as when trained alone with the same seed.
        with torch.random.fork_rng(devices=[]):
            self._build_teacher_and_terms(teacher, distill, scope,
                                          tuple(probe_size))

    # -- building -----------------------------------------------------------
    def _build_teacher_and_terms(self, teacher: dict, distill: Dict[str, dict],
                                 scope: Optional[str],
                                 probe_size: Tuple[int, int]) -> None:
        # Not a submodule: out of state_dict, parameters(), train() and DDP.
        self.teacher_checkpoint = teacher.get('checkpoint')
        object.__setattr__(self, 'teacher', build_frozen_teacher(
            teacher['config'], teacher.get('checkpoint'), scope,
            teacher.get('strip_prefix')))
        self.teacher_autocast = parse_teacher_autocast(
            teacher.get('autocast', False))
        # None when both models normalise images the same way
        self.teacher_input_converter = TeacherInputConverter.between(
            self.data_preprocessor, self.teacher.data_preprocessor)
        self.distill_terms = self._build_terms(distill)
        terms = list(self.distill_terms.values())
        self.student_recorder = ModelRecorder(
            self.student, [t.student_spec for t in terms], 'student')
        self.teacher_recorder = ModelRecorder(
            self.teacher, [t.teacher_spec for t in terms], 'teacher')
        self._iteration = self._step_iteration = 0
        self._probe_and_setup(probe_size)

    def _build_terms(self, distill: Dict[str, dict]) -> nn.ModuleDict:
        if not isinstance(distill, dict) or not distill:
            raise ValueError('distill must be a non-empty dict of named '
                             'terms, e.g. dict(fpn=dict(type='
                             '"FeatureImitation", student="neck", '
                             'teacher="neck")).')
        student_modules = dict(self.student.named_modules())
        teacher_modules = dict(self.teacher.named_modules())
        terms = nn.ModuleDict()
        for name, cfg in distill.items():
            if not name.isidentifier():
                raise ValueError(f'Term name {name!r} must be a Python '
                                 'identifier (letters, digits, _).')
            try:
                term = MODELS.build(dict(cfg, _scope_='mmkd'))
            except (TypeError, KeyError, ValueError) as err:
                raise type(err)(f'Term {name!r} ({cfg.get("type")}): '
                                f'{err}') from err
            if not isinstance(term, DistillTerm):
                raise TypeError(f'Term {name!r}: {type(term).__name__} is '
                                'not a DistillTerm.')
            term.name = name
            require_module(student_modules, term.student_spec.path,
                           'student', name)
            require_module(teacher_modules, term.teacher_spec.path,
                           'teacher', name)
            term.bind_models(self.student, self.teacher,
                             self.teacher_autocast)
            terms[name] = term
        return terms

    @torch.no_grad()
    def _probe_and_setup(self, size: Tuple[int, int]) -> None:
        """Run both models once on a dummy batch; set up and dry-run every
        term, so that shape, level and mask errors surface at build time.

        Runs where :func:`probe_device` says (the GPU under NCCL), then
        moves everything back to where it was built."""
        built_on = next(self.student.parameters()).device
        device = probe_device()
        self.to(device)
        try:
            self._probe_on(device, size)
        finally:
            self.to(built_on)
        self.teacher_recorder.stop_when_complete = True

    def _probe_on(self, device: torch.device, size: Tuple[int, int]) -> None:
        inputs, samples = make_probe_batch(self.student, size, device=device)
        # the teacher runs first in training; a student loss may edit the
        # ground truth in place (Fast R-CNN pops its proposals' boxes)
        teacher_samples = copy.deepcopy(samples)
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
        try:
            self._run_teacher(inputs, teacher_samples)
        except Exception as err:
            raise RuntimeError(
                f'The teacher ({type(self.teacher).__name__}) failed on the '
                f'build-time probe batch of size {size}: {err}. Set the '
                'distiller\'s probe_size to an input size both models '
                'accept.') from err
        self.teacher_recorder.expected_calls = \
            self.teacher_recorder.call_counts()
        self._check_teacher_records_finite()
        self._give_inputs(inputs)
        for name, term in self.distill_terms.items():
            student_levels = term.parse_record(self.student_recorder.get(
                term.student_spec, name), 'student')
            teacher_levels = term.parse_record(self.teacher_recorder.get(
                term.teacher_spec, name), 'teacher')
            term.setup(student_levels, teacher_levels, self.student)
            term.to(device)  # adaptors are built on the CPU
            try:
                with probing(term):
                    term.compute(student_levels, teacher_levels, samples)
            except Exception as err:
                raise RuntimeError(
                    f'Term {name!r} ({type(term).__name__}) failed on the '
                    f'build-time probe batch: {err}') from err
        self._give_inputs(None)
        self.student_recorder.clear()
        self.teacher_recorder.clear()

    def _check_teacher_records_finite(self) -> None:
        """A teacher giving NaN/inf on the probe is an error at build."""
        counts = self.teacher_recorder.call_counts()
        for spec in self.teacher_recorder.specs:
            if not counts[spec]:
                continue  # not executed: the term's own check names it
            levels = recorded_tensors(self.teacher_recorder.get(spec))
            if all(bool(torch.isfinite(t).all()) for t in levels):
                continue
            bad = [name for name, value in
                   list(self.teacher.named_parameters()) +
                   list(self.teacher.named_buffers())
                   if value.is_floating_point()
                   and not bool(torch.isfinite(value).all())]
            raise ValueError(
                f'The teacher checkpoint {self.teacher_checkpoint!r} gives '
                f'NaN/inf at {spec} on the build-time probe batch, before '
                'any training. Non-finite teacher weights or buffers '
                f'({len(bad)}): {bad[:10]}. Use a checkpoint the teacher '
                'was trained to, not one saved after its loss diverged.')

    # -- nn.Module plumbing for the hidden teacher ---------------------------
    def _apply(self, fn, *args, **kwargs):
        """Move/cast the teacher with the distiller (``.to``, ``.cuda``)."""
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def __deepcopy__(self, memo: dict) -> 'Distiller':
        """Copy everything but the frozen teacher, which the copy shares.

        EMA hooks (mmdet's ``EMAHook``, used by RTMDet and YOLOX configs)
        deep-copy the model; a second frozen teacher would only cost memory.
        The recorders are shared too: the hooks on the shared teacher, and
        the hooks the copied student modules carry over, report to them,
        and every step clears them before and after use."""
        for shared in (self.teacher, self.teacher_recorder,
                       self.student_recorder):
            memo[id(shared)] = shared
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for key, value in self.__dict__.items():
            object.__setattr__(copied, key, copy.deepcopy(value, memo))
        return copied

    def train(self, mode: bool = True) -> 'Distiller':
        super().train(mode)
        self.teacher.eval()
        return self

    # -- forward --------------------------------------------------------------
    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def _current_iteration(self) -> int:
        """The Runner's iteration (survives resume), else a local count."""
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter')
        return self._iteration if iteration is None else int(iteration)

    @torch.no_grad()
    def _run_teacher(self, inputs: torch.Tensor,
                     data_samples: Sequence[BaseDataElement]) -> None:
        if self.teacher_input_converter is not None:
            inputs = self.teacher_input_converter(inputs)
        self.teacher_recorder.active = True
        try:
            with teacher_autocast(inputs.device.type, self.teacher_autocast):
                self.teacher(inputs, data_samples, mode='tensor')
        except StopForward:
            pass  # every module the terms read has run
        finally:
            self.teacher_recorder.active = False

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

    def loss(self, inputs: torch.Tensor,
             data_samples: List[BaseDataElement]
             ) -> Dict[str, Union[torch.Tensor, List[torch.Tensor]]]:
        """The student's task losses plus one ``loss_distill_<name>`` each
        term."""
        self.student_recorder.clear()
        self.teacher_recorder.clear()
        self._run_teacher(inputs, data_samples)
        self.student_recorder.active = True
        try:
            losses = self.student.loss(inputs, data_samples)
        finally:
            self.student_recorder.active = False
        iteration = self._step_iteration = self._current_iteration()
        self._give_inputs(inputs)
        for name, term in self.distill_terms.items():
            losses[f'loss_distill_{name}'] = term(
                self.student_recorder.get(term.student_spec, name),
                self.teacher_recorder.get(term.teacher_spec, name),
                data_samples, iteration)
        self.student_recorder.clear()
        self.teacher_recorder.clear()
        self._iteration += 1
        return losses
