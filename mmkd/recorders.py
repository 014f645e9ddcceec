"""Record what modules read or produce, by module path, with forward hooks.

A path names a submodule as in ``model.named_modules()``: ``neck`` (every
FPN level, as the tuple the neck returns), ``neck.fpn_convs.2``,
``backbone.layer3`` or ``decode_head.conv_seg``. A module called several
times in one forward (a head conv shared by the FPN levels) is recorded as
the tuple of its outputs, one per call.

A path may also name what an instance's *methods* return: with
``dict(path='bbox_head', record='calls', methods=('forward',
'get_targets'))`` the record holds the arguments and return value of every
call of ``bbox_head.forward`` and ``bbox_head.get_targets`` (e.g. the
assignment a dense head computes in its own loss); a submodule's method is
named by its path, e.g. ``'cls_convs.2.forward'``. The methods are wrapped
on that one instance only; a deep copy of the model (EMA hooks) gets
wrappers bound to its own copy of the module.

Records are kept only while the recorder is active and cleared at the start
of every step, so predict/val/test never hold features in memory.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from .utils import nearest_names

READ_KINDS = ('output', 'input', 'calls')


class StopForward(Exception):
    """Raised by a hook once every record a model must supply is taken.

    It lets the teacher stop after the deepest module any term reads, so
    e.g. its heads never run when only its neck is distilled.
    """


@dataclass(frozen=True)
class ReadSpec:
    """Where a distillation term reads: a module path and what to record.

    Args:
        path: dotted module path, as in ``model.named_modules()``; ``''``
            (the model itself) only with ``record='calls'``.
        record: ``'output'`` (default), ``'input'`` (the positional
            arguments of the module's forward; one tensor when there is
            only one) or ``'calls'`` (the calls of ``methods`` on that
            module instance, as :class:`MethodCalls`).
        methods: the method names recorded with ``record='calls'``.
    """
    path: str
    record: str = 'output'
    methods: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, 'methods', tuple(self.methods))
        if (self.record == 'calls') != bool(self.methods):
            raise ValueError(
                f'Module reference {self.path!r}: give methods=(...) with '
                f'record="calls" and only then; got record={self.record!r}, '
                f'methods={self.methods!r}.')

    @classmethod
    def parse(cls, spec: Union[str, dict, 'ReadSpec']) -> 'ReadSpec':
        """Accept ``'neck'`` or ``dict(path='neck', record='input')``."""
        if isinstance(spec, ReadSpec):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, dict) and \
                set(spec) <= {'path', 'record', 'methods'} and 'path' in spec:
            return cls(**spec)
        raise TypeError(
            f'A module reference must be a path string such as "neck" or '
            f'dict(path="neck", record="output"|"input"); got {spec!r}.')

    def __str__(self) -> str:
        if self.record == 'calls':
            return f'{self.path} (calls of {", ".join(self.methods)})'
        return self.path if self.record == 'output' else \
            f'{self.path} ({self.record})'


@dataclass
class MethodCall:
    """One recorded call: the instance, its arguments and return value.

    ``key`` is the name it is recorded under: the method name, or
    ``'<submodule path>.<method>'`` for a submodule's method. ``cache``
    holds what readers derive from the call once per step (e.g. a head
    view's aligned predictions, shared by several terms); it goes with the
    record when the recorder is cleared.
    """
    owner: nn.Module
    name: str
    args: tuple
    kwargs: dict
    result: Any
    key: str = ''
    cache: dict = field(default_factory=dict, repr=False)


class MethodCalls(dict):
    """The recorded calls of one module instance: ``{method: [calls]}``."""

    def last(self, name: str) -> MethodCall:
        """The last call of method ``name``; KeyError when never called."""
        if not self.get(name):
            raise KeyError(f'{name!r} was not called in this forward pass '
                           f'(called: {sorted(self)}).')
        return self[name][-1]


class RecordedMethod:
    """Stands in for ``owner.<name>`` on one instance and records calls.

    It holds the owner, not a bound method or a closure, so that
    ``copy.deepcopy`` of the model (EMA hooks) gives the copy a wrapper
    that calls and reports the *copied* module.

    Args:
        owner: the module whose method is wrapped.
        name: the method name.
        report: called with every :class:`MethodCall` after it returns.
    """

    def __init__(self, owner: nn.Module, name: str, report) -> None:
        if not callable(getattr(owner, name, None)):
            raise AttributeError(
                f'{type(owner).__name__} has no method {name!r} to record.')
        self.owner = owner
        self.name = name
        self.report = report
        # a method already replaced on this instance (another recorder)
        self.inner = owner.__dict__.get(name)

    def __call__(self, *args, **kwargs) -> Any:
        if self.inner is not None:
            result = self.inner(*args, **kwargs)
        else:
            result = getattr(type(self.owner), self.name)(
                self.owner, *args, **kwargs)
        self.report(MethodCall(self.owner, self.name, args, kwargs, result))
        return result

    def remove(self) -> None:
        """Put back what was there before (the class method by default)."""
        if self.owner.__dict__.get(self.name) is self:
            if self.inner is None:
                del self.owner.__dict__[self.name]
            else:
                object.__setattr__(self.owner, self.name, self.inner)


class _Handle:
    """Removal handle of a :class:`RecordedMethod` (like a hook handle)."""

    def __init__(self, wrapper: RecordedMethod) -> None:
        self.wrapper = wrapper

    def remove(self) -> None:
        self.wrapper.remove()


def require_module(modules: Dict[str, nn.Module], path: str,
                   model_name: str, term: Optional[str] = None,
                   root: bool = False) -> nn.Module:
    """``modules[path]``, or a KeyError naming the nearest valid paths.

    Args:
        modules: ``dict(model.named_modules())``.
        path: the dotted path asked for.
        model_name: ``'student'`` or ``'teacher'``.
        term: the distillation term asking, for the message.
        root: the empty path (the model itself) is valid too: a term may
            record the calls of the model's own methods (e.g. a DETR's
            ``forward_decoder``), never its output.
    """
    if (path or root) and path in modules:
        return modules[path]
    where = f'Term {term!r}: ' if term else ''
    suggestions = nearest_names(path, [n for n in modules if n])
    raise KeyError(f'{where}{model_name} has no module {path!r}. Nearest '
                   f'valid paths: {suggestions}.')


class ModelRecorder:
    """Forward hooks on the modules of one model, keyed by :class:`ReadSpec`.

    Args:
        model: the model to record from.
        specs: where to record.
        model_name: ``'student'`` or ``'teacher'``, for error messages.

    Raises:
        KeyError: a path names no submodule; the message lists the nearest
            valid paths.
    """

    def __init__(self, model: nn.Module, specs: Iterable[ReadSpec],
                 model_name: str) -> None:
        self.model_name = model_name
        self.specs: List[ReadSpec] = list(dict.fromkeys(specs))
        self.active = False
        self.stop_when_complete = False
        self.expected_calls: Dict[ReadSpec, int] = {}
        self._calls: Dict[ReadSpec, List[Any]] = {}
        self._handles = []
        modules = dict(model.named_modules())
        for spec in self.specs:
            if spec.record not in READ_KINDS:
                raise ValueError(
                    f'record must be one of {READ_KINDS}, got '
                    f'{spec.record!r} for {model_name} path {spec.path!r}.')
            module = require_module(modules, spec.path, model_name,
                                    root=spec.record == 'calls')
            if spec.record == 'calls':
                for key in spec.methods:
                    # 'forward' of the module, or 'cls_convs.2.forward' of
                    # one of its submodules
                    owner_path, _, name = key.rpartition('.')
                    owner = require_module(
                        dict(module.named_modules()), owner_path,
                        model_name) if owner_path else module
                    wrapper = RecordedMethod(
                        owner, name, _CallReporter(self, spec, key))
                    object.__setattr__(owner, name, wrapper)
                    self._handles.append(_Handle(wrapper))
                continue
            if spec.record == 'output':
                handle = module.register_forward_hook(
                    lambda m, args, output, spec=spec: self._record(
                        spec, output))
            else:  # before the module runs, so a stop skips it too
                handle = module.register_forward_pre_hook(
                    lambda m, args, spec=spec: self._record(
                        spec, args[0] if len(args) == 1 else tuple(args)))
            self._handles.append(handle)

    def _record(self, spec: ReadSpec, value: Any) -> None:
        """Keep ``value`` while active; stop the model once complete."""
        if not self.active:
            return
        self._calls.setdefault(spec, []).append(value)
        if self.stop_when_complete and self.complete():
            raise StopForward

    def complete(self) -> bool:
        """Whether every spec has been called as often as in the probe."""
        return all(
            len(self._calls.get(spec, ())) >= self.expected_calls.get(spec, 1)
            for spec in self.specs)

    def clear(self) -> None:
        self._calls = {}

    def records(self) -> Dict[ReadSpec, List[Any]]:
        """Every recorded value, by spec (each a list of calls)."""
        return {spec: list(values) for spec, values in self._calls.items()}

    def load_records(self, records: Dict[ReadSpec, List[Any]]) -> None:
        """Stand in for a forward: the records :meth:`get` returns, e.g. a
        teacher's cached ones (:mod:`mmkd.distillers.teacher_cache`)."""
        self._calls = {spec: list(values) for spec, values in records.items()}

    def call_counts(self) -> Dict[ReadSpec, int]:
        return {spec: len(self._calls.get(spec, ())) for spec in self.specs}

    def get(self, spec: ReadSpec, term: Optional[str] = None) -> Any:
        """The recorded value: one call's value, or a tuple of all calls.

        Args:
            spec: where the value was recorded.
            term: the distillation term asking, for the message.

        Raises:
            RuntimeError: the module did not run in this forward pass.
        """
        calls = self._calls.get(spec)
        if not calls:
            where = f'Term {term!r}: ' if term else ''
            raise RuntimeError(
                f'{where}{self.model_name} module {spec} was not executed in '
                'this forward pass, so there is nothing to distil from it. '
                'Read a module that runs there: the student runs its loss '
                'forward, the teacher its tensor-mode forward, which '
                'computes no loss (so e.g. mmseg auxiliary heads do not '
                'run).')
        if spec.record == 'calls':
            grouped = MethodCalls()
            for call in calls:
                grouped.setdefault(call.key or call.name, []).append(call)
            return grouped
        return calls[0] if len(calls) == 1 else tuple(calls)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def recorded_tensors(value: Any) -> List[torch.Tensor]:
    """Every tensor in a record (nested tuples, lists, dicts, the results
    of recorded method calls, and a single call's arguments and result),
    e.g. to check they are finite."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, MethodCalls):
        value = [call.result for calls in value.values() for call in calls]
    elif isinstance(value, MethodCall):
        value = [value.args, value.kwargs, value.result]
    elif isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in recorded_tensors(item)]
    return []


class _CallReporter:
    """Sends a method call to its recorder under one spec (deep-copyable:
    the distiller shares its recorders with its copies)."""

    def __init__(self, recorder: ModelRecorder, spec: ReadSpec,
                 key: str) -> None:
        self.recorder = recorder
        self.spec = spec
        self.key = key

    def __call__(self, call: MethodCall) -> None:
        call.key = self.key
        self.recorder._record(self.spec, call)
