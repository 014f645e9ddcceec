"""What a distill config's terms cost over the student and the teacher read.

For any mmkd distill config, in one process and on one fixed synthetic
batch (random images, the ground truth of mmkd's build-time probe), three
configurations are timed side by side in interleaved rounds (one training
step of each a round, medians over rounds, as the project's measuring
guide asks: timed one after another, the same step drifted by ±8 % on
shared machines):

- ``student``: the student alone, forward + backward + AdamW step;
- ``teacher read``: the distiller's own teacher forwards (frozen, no_grad,
  each stopped after the deepest module its terms read): with several
  teachers, every teacher some term reads at the first step, so the limit
  is the student step plus each teacher's read;
- ``distill``: the distiller's full training step.

``ratio = distill / (student + teacher read)`` is then what the terms,
adaptors and records add (1.00: nothing).

Clocks (``--clock``): ``cpu`` (the default on the CPU) times each step by
the CPU time of this process's threads that compute it: with one torch
thread (``--threads 1``) every kernel, forward and backward alike (the
autograd engine runs CPU backward on the calling thread), runs on the main
thread, so ``time.thread_time()`` of that thread is the step's whole
compute and does not count the time other jobs of a shared machine take
the core away (wall-clock ratios moved by 5-8 % between runs there); with
more threads ``time.process_time()`` (all threads, OpenMP's spin-waits
included). ``wall`` (the default, and the only clock, on a GPU) is
``time.perf_counter()`` after a device synchronisation. Both are recorded;
the ratio uses the chosen one.

Adversarial configs (``optim_wrapper`` built by
``mmkd.AdversarialOptimWrapperConstructor``): the distill step is the
distiller's own ``train_step`` with the ``OptimWrapperDict`` that
constructor builds, so the discriminators' update is in it; the student
alone steps with the config's ``student`` wrapper (same optimizer and
gradient clipping).

Two-stage terms on the student's RoIs (``mmkd.RoIHeadTerm``) run the
teacher's R-CNN box head on the student's sampled RoIs inside the term: it
cannot run before the student has sampled them, so it is term cost, not
part of ``teacher read`` (the teacher up to the features the RoI head pools
from); its time inside the distill step is timed on its own and printed
as a share. The memory ratio compares the
peak memory steps add over what is held before them,
``Δpeak(distill) / (Δpeak(student) + Δpeak(teacher read))``: on a GPU
``torch.cuda.max_memory_allocated`` around each step after the warm-up
(weights and optimizer state held before); on the CPU the RSS polled by a
thread during a few steps of a fresh process per configuration, over its
RSS after building (the optimizer state the first step creates counts),
with glibc's ``MALLOC_MMAP_THRESHOLD_`` at 64 KiB so that freed tensors
leave the RSS.

The teacher checkpoint of the config is used when it is a local file;
otherwise (a URL, or the digits benchmark's placeholder) the teacher gets
random weights, which do not change its speed.

Usage::

    python tools/benchmark/term_overhead.py CONFIG [--rounds 20]
        [--warmup 3] [--batch-size 2] [--size 256] [--device cpu|cuda]
        [--amp] [--threads N] [--clock cpu|wall] [--no-memory]
        [--out result.json]
        [--cfg-options k=v ...]
"""
import argparse
import copy
import json
import multiprocessing
import os
import os.path as osp
import resource
import statistics
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import mmkd  # noqa: E402,F401
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import MODELS, DefaultScope  # noqa: E402

from mmkd.distillers.probe import make_probe_batch  # noqa: E402
from mmkd.distillers.teacher import resolve_config_path  # noqa: E402
from mmkd.utils.init import init_weights_offline  # noqa: E402

CONFIGURATIONS = ('student', 'teacher read', 'distill')
TEACHER_ROI = 'teacher RoI head on student RoIs'


def clock_source(clock: str) -> str:
    """What the clock reads, for the printed result."""
    if clock == 'wall':
        return 'time.perf_counter'
    return f'time.{cpu_clock(torch.get_num_threads()).__name__}'


def load_config(path: str, tmp_dir: str,
                cfg_options: Optional[dict] = None) -> Config:
    """The distill config; a teacher checkpoint that is not a local file
    is replaced by random weights saved under ``tmp_dir``."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.model.get('type') not in ('mmkd.Distiller', 'Distiller'):
        raise ValueError(f'{path} is not a distill config: its model type '
                         f'is {cfg.model.get("type")!r}, expected '
                         "'mmkd.Distiller'.")
    teachers = cfg.model.get('teachers') or dict(
        teacher=cfg.model.teacher)
    for name, teacher in teachers.items():
        if teacher.get('role', 'frozen') == 'ema' or \
                osp.isfile(str(teacher.get('checkpoint'))):
            continue  # an EMA teacher has no checkpoint
        teacher_cfg = teacher.config
        if isinstance(teacher_cfg, str):
            teacher_cfg = Config.fromfile(resolve_config_path(teacher_cfg))
        model_cfg = teacher_cfg.get('model', teacher_cfg)
        scope = teacher_cfg.get('default_scope', cfg.default_scope)
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope(scope):
            weights = MODELS.build(copy.deepcopy(model_cfg)).state_dict()
        teacher.checkpoint = osp.join(tmp_dir, f'random_{name}.pth')
        torch.save(dict(state_dict=weights), teacher.checkpoint)
    return cfg


def build_models(cfg: Config, device: torch.device):
    """The distiller and a separate student of the same config, both
    initialised as the Runner does (no downloads): a DETR student's
    ``level_embed`` is uninitialised memory until then."""
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        torch.manual_seed(0)
        distiller = MODELS.build(copy.deepcopy(cfg.model))
        init_weights_offline(distiller)
        torch.manual_seed(0)
        student = MODELS.build(copy.deepcopy(cfg.model.student))
        init_weights_offline(student)
    return distiller.to(device), student.to(device)


def synthetic_batch(student: nn.Module, batch_size: int, size: int,
                    device: torch.device):
    """Random preprocessed images with the probe's ground truth."""
    inputs, samples = make_probe_batch(student, (size, size), batch_size,
                                       device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(inputs.shape, generator=generator).to(device)
    return inputs, samples


def is_adversarial(cfg: Config) -> bool:
    """Whether the config's optimizer wrappers come from
    ``mmkd.AdversarialOptimWrapperConstructor``."""
    from mmkd.optim import uses_adversarial_constructor
    return uses_adversarial_constructor(cfg.get('optim_wrapper'))


class _Identity(nn.Module):
    """A data preprocessor that hands the already preprocessed batch on."""

    def forward(self, data: dict, training: bool = False) -> dict:
        return data


class SectionTimer:
    """Both clocks spent inside wrapped callables, summed until read."""

    def __init__(self, cpu_clock: Callable[[], float]) -> None:
        self.cpu_clock = cpu_clock
        self.wall = self.cpu = 0.0

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            wall, cpu = time.perf_counter(), self.cpu_clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu += self.cpu_clock() - cpu
                self.wall += time.perf_counter() - wall
        return timed

    def pop(self) -> Dict[str, float]:
        out = dict(wall=self.wall, cpu=self.cpu)
        self.wall = self.cpu = 0.0
        return out


def teacher_roi_heads(distiller: nn.Module) -> List[nn.Module]:
    """The teacher RoI heads that terms run on the student's RoIs."""
    from mmkd.losses import RoIHeadTerm
    heads = []
    for term in distiller.distill_terms.values():
        if isinstance(term, RoIHeadTerm) and \
                all(term.teacher_roi_head is not h for h in heads):
            heads.append(term.teacher_roi_head)
    return heads


def make_steps(distiller: nn.Module, student: nn.Module, inputs, samples,
               amp: bool, cfg: Optional[Config] = None,
               roi_timer: Optional[SectionTimer] = None
               ) -> Dict[str, Callable[[], None]]:
    """One callable a configuration, each one step.

    With an adversarial ``cfg`` the distill step is the distiller's
    ``train_step`` (discriminators' update, then the student's); with
    ``roi_timer`` the teacher RoI heads' ``_bbox_forward`` calls are
    timed by it.
    """
    from mmengine.optim import (AmpOptimWrapper, OptimWrapper,
                                build_optim_wrapper)

    def wrapper(model: nn.Module):
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-5)
        return AmpOptimWrapper(optimizer=optimizer) if amp else \
            OptimWrapper(optimizer=optimizer)

    adversarial = cfg is not None and is_adversarial(cfg)
    if adversarial:
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        if amp:
            from mmkd.optim.adversarial_constructor import enable_amp
            enable_amp(optim_cfg)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            wrappers = {
                'student': build_optim_wrapper(
                    student, copy.deepcopy(optim_cfg['student'])),
                'distill': build_optim_wrapper(distiller, optim_cfg)}
    else:
        wrappers = {'student': wrapper(student),
                    'distill': wrapper(distiller)}

    def train_step(model: nn.Module, name: str) -> Callable[[], None]:
        def step() -> None:
            with wrappers[name].optim_context(model):
                losses = model(inputs, samples, mode='loss')
            loss, _ = model.parse_losses(losses)
            wrappers[name].update_params(loss)
        return step

    def adversarial_step() -> None:
        # the batch is preprocessed already, as for the other two steps
        preprocessor = distiller.data_preprocessor
        distiller.data_preprocessor = _Identity()
        try:
            distiller.train_step(dict(inputs=inputs, data_samples=samples),
                                 wrappers['distill'])
        finally:
            distiller.data_preprocessor = preprocessor

    if roi_timer is not None:
        for head in teacher_roi_heads(distiller):
            head._bbox_forward = roi_timer.wrap(head._bbox_forward)

    first_step = {name for names in distiller.teachers_read(0, 0).values()
                  for name in names}

    def teacher_read() -> None:
        with torch.autocast(inputs.device.type, enabled=amp):
            distiller.run_teachers(inputs, samples, names=first_step)
        for slot in distiller.slots.values():
            slot.recorder.clear()

    student.train()
    distiller.train()
    return {'student': train_step(student, 'student'),
            'teacher read': teacher_read,
            'distill': adversarial_step if adversarial else
            train_step(distiller, 'distill')}


def cpu_clock(threads: int) -> Callable[[], float]:
    """The CPU-time clock of a step: the main thread's with one torch
    thread (every CPU kernel runs on it), else the whole process's."""
    return time.thread_time if threads == 1 else time.process_time


def _summary(values: List[float]) -> Dict[str, float]:
    return dict(median_s=statistics.median(values),
                mean_s=statistics.mean(values))


def time_interleaved(steps: Dict[str, Callable[[], None]], rounds: int,
                     warmup: int, device: torch.device, clock: str = 'wall',
                     sections: Optional[Dict[str, SectionTimer]] = None
                     ) -> Dict[str, Dict]:
    """Seconds a step per configuration, one step of each a round, by
    ``clock`` (``'cpu'`` or ``'wall'``; the other is recorded under
    ``other_clock``); on a GPU also the peak memory each step adds.
    ``sections``: timers read after each distill step, their medians
    under ``sections``."""
    cuda = device.type == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cpu_now = cpu_clock(torch.get_num_threads())
    seconds = {name: dict(wall=[], cpu=[]) for name in steps}
    inner = {name: dict(wall=[], cpu=[]) for name in sections or {}}
    peaks = {name: 0 for name in steps}
    for index in range(warmup + rounds):
        for name, step in steps.items():
            sync()
            if cuda:
                before = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
            for timer in (sections or {}).values():
                timer.pop()
            start, start_cpu = time.perf_counter(), cpu_now()
            step()
            sync()
            elapsed_cpu = cpu_now() - start_cpu
            elapsed = time.perf_counter() - start
            if cuda:
                peaks[name] = max(peaks[name],
                                  torch.cuda.max_memory_allocated(device) -
                                  before)
            if index >= warmup:
                seconds[name]['wall'].append(elapsed)
                seconds[name]['cpu'].append(elapsed_cpu)
                if name == 'distill':
                    for key, timer in (sections or {}).items():
                        for kind, value in timer.pop().items():
                            inner[key][kind].append(value)
    other = 'wall' if clock == 'cpu' else 'cpu'
    out: Dict[str, Dict] = {
        name: dict(**_summary(values[clock]),
                   peak_step_mib=peaks[name] / 2**20 if cuda else None,
                   other_clock=dict(clock=other, **_summary(values[other])))
        for name, values in seconds.items()}
    if inner:
        out['distill']['sections'] = {
            key: dict(**_summary(values[clock]),
                      other_clock=dict(clock=other,
                                       **_summary(values[other])))
            for key, values in inner.items()}
    return out


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class _RssPeak:
    """The highest RSS seen by a thread polling ``/proc/self/statm``
    every ``period`` seconds (torch kernels release the GIL)."""

    def __init__(self, period: float = 0.0005) -> None:
        self.period = period
        self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mib())
            time.sleep(self.period)

    def __enter__(self) -> '_RssPeak':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def _cpu_peak_worker(args: dict, name: str, queue) -> None:
    """In a fresh process: build, then the peak RSS that ``steps`` steps
    add over the RSS held before the first one (optimizer state
    included: it is part of what a training step needs)."""
    torch.set_num_threads(args['threads'])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args['config'], tmp, args['cfg_options'])
        device = torch.device('cpu')
        distiller, student = build_models(cfg, device)
        inputs, samples = synthetic_batch(student, args['batch_size'],
                                          args['size'], device)
        step = make_steps(distiller, student, inputs, samples,
                          False, cfg)[name]
        if name == 'teacher read':
            del student
        elif name == 'student':
            del distiller
        before = _rss_mib()
        with _RssPeak() as peak:
            for _ in range(args['steps']):
                step()
        queue.put(max(peak.peak - before, 0.0))


def cpu_step_peaks(args: dict) -> Dict[str, float]:
    """Peak RSS a step adds, each configuration in its own process."""
    context = multiprocessing.get_context('spawn')
    peaks = {}
    # glibc then maps every block of 64 KiB or more on its own and unmaps
    # it when freed, so RSS follows the live tensors instead of keeping
    # freed heap memory (the workers inherit the environment)
    saved = os.environ.get('MALLOC_MMAP_THRESHOLD_')
    os.environ['MALLOC_MMAP_THRESHOLD_'] = str(64 * 1024)
    try:
        for name in CONFIGURATIONS:
            queue = context.Queue()
            process = context.Process(target=_cpu_peak_worker,
                                      args=(args, name, queue))
            process.start()
            peaks[name] = queue.get(timeout=1800)
            process.join()
    finally:
        if saved is None:
            del os.environ['MALLOC_MMAP_THRESHOLD_']
        else:
            os.environ['MALLOC_MMAP_THRESHOLD_'] = saved
    return peaks


def run(config: str, rounds: int = 20, warmup: int = 3, batch_size: int = 2,
        size: int = 256, device: str = 'cpu', amp: bool = False,
        threads: Optional[int] = None, memory: bool = True,
        cfg_options: Optional[dict] = None,
        clock: Optional[str] = None) -> Dict:
    """Time the three configurations; returns their medians by ``clock``
    (default: ``'cpu'`` on the CPU, ``'wall'`` on a GPU), the ratio and
    (``memory=True``) the memory ratio."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    clock = clock or ('cpu' if dev.type == 'cpu' else 'wall')
    if clock not in ('cpu', 'wall'):
        raise ValueError(f"clock must be 'cpu' or 'wall', got {clock!r}.")
    if clock == 'cpu' and dev.type != 'cpu':
        raise ValueError(f'The CPU clock does not see the time of {device} '
                         "kernels; use clock='wall' on a GPU.")
    timer = SectionTimer(cpu_clock(torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, tmp, cfg_options)
        distiller, student = build_models(cfg, dev)
        inputs, samples = synthetic_batch(student, batch_size, size, dev)
        roi = bool(teacher_roi_heads(distiller))
        steps = make_steps(distiller, student, inputs, samples, amp, cfg,
                           timer if roi else None)
        timings = time_interleaved(
            steps, rounds, warmup, dev, clock,
            {TEACHER_ROI: timer} if roi else None)
    median = {name: t['median_s'] for name, t in timings.items()}
    reference = median['student'] + median['teacher read']
    result = dict(
        config=config, device=device, amp=amp, batch_size=batch_size,
        size=size, rounds=rounds, threads=torch.get_num_threads(),
        clock=clock, clock_source=clock_source(clock),
        adversarial_train_step=is_adversarial(cfg),
        timings=timings, ratio=median['distill'] / reference)
    other = {name: t['other_clock']['median_s']
             for name, t in timings.items()}
    result['other_clock'] = dict(
        clock=timings['distill']['other_clock']['clock'],
        ratio=other['distill'] / (other['student'] + other['teacher read']))
    if roi:
        inner = timings['distill']['sections'][TEACHER_ROI]['median_s']
        result['teacher_roi_head'] = dict(
            median_s=inner, share_of_distill=inner / median['distill'],
            share_of_overhead=inner / (median['distill'] - reference)
            if median['distill'] > reference else float('nan'),
            ratio_with_it_as_teacher_read=median['distill'] / (
                reference + inner))
    if memory:
        if dev.type == 'cuda':
            peaks = {n: t['peak_step_mib'] for n, t in timings.items()}
        else:
            peaks = cpu_step_peaks(dict(
                config=config, cfg_options=cfg_options, threads=threads or
                torch.get_num_threads(), batch_size=batch_size, size=size,
                steps=max(2, min(rounds, 3))))
        result['peak_step_mib'] = peaks
        reference = peaks['student'] + peaks['teacher read']
        result['memory_ratio'] = peaks['distill'] / reference \
            if reference > 0 else float('nan')
        result['memory_over_student'] = peaks['distill'] / \
            peaks['student'] if peaks['student'] > 0 else float('nan')
    return result


def format_result(result: Dict) -> str:
    lines = [f'{result["config"]}',
             f'batch {result["batch_size"]} x {result["size"]}^2, '
             f'{result["device"]}{" AMP" if result["amp"] else ""}, '
             f'{result["threads"]} threads, {result["rounds"]} interleaved '
             f'rounds, {result["clock"]} clock ({result["clock_source"]})']
    if result.get('adversarial_train_step'):
        lines.append('distill = the distiller\'s train_step with the '
                     'AdversarialOptimWrapperConstructor wrappers '
                     '(discriminator and student updates)')
    lines.append(f'{"configuration":<16}{"median s":>10}{"mean s":>10}'
                 f'{"step peak MiB":>15}')
    for name, t in result['timings'].items():
        peak = result.get('peak_step_mib', {}).get(name)
        peak_text = f'{peak:>15.1f}' if peak is not None else f'{"-":>15}'
        lines.append(f'{name:<16}{t["median_s"]:>10.4f}{t["mean_s"]:>10.4f}'
                     f'{peak_text}')
    lines.append(f'ratio = distill / (student + teacher read) = '
                 f'{result["ratio"]:.3f} ({result["clock"]} clock; '
                 f'{result["other_clock"]["clock"]} clock: '
                 f'{result["other_clock"]["ratio"]:.3f})')
    roi = result.get('teacher_roi_head')
    if roi:
        lines.append(
            f'of distill: {TEACHER_ROI} {roi["median_s"]:.4f} s '
            f'({100 * roi["share_of_distill"]:.1f} % of the step, '
            f'{100 * roi["share_of_overhead"]:.0f} % of the overhead); '
            'counted as teacher read: ratio = '
            f'{roi["ratio_with_it_as_teacher_read"]:.3f}')
    if 'memory_ratio' in result:
        lines.append(f'memory ratio = distill / (student + teacher read) '
                     f'= {result["memory_ratio"]:.3f}; distill / student = '
                     f'{result["memory_over_student"]:.3f}')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='an mmkd distill config')
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--size', type=int, default=256,
                        help='square input side (a multiple of 32)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (MMEngine AmpOptimWrapper)')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch decides)')
    parser.add_argument(
        '--clock', choices=('cpu', 'wall'),
        help='cpu (default on the CPU): CPU time of the computing '
        'threads; with --threads 1 every CPU kernel, backward included, '
        'runs on the main thread, so its thread_time is the whole compute '
        'and other jobs on a shared machine do not inflate it. wall '
        '(default and only choice on a GPU): perf_counter after a '
        'synchronisation')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the memory measurement')
    parser.add_argument('--out', help='also write the result as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error('--rounds must be >= 1 and --warmup >= 0')
    if args.size % 32:
        parser.error('--size must be a multiple of 32')
    if args.amp and not args.device.startswith('cuda'):
        parser.error("--amp needs --device cuda (MMEngine's "
                     'AmpOptimWrapper runs on GPUs)')
    if args.clock == 'cpu' and not args.device.startswith('cpu'):
        parser.error('--clock cpu does not see GPU kernels; use --clock '
                     'wall with --device cuda')
    if not osp.isfile(args.config):
        parser.error(f'config not found: {args.config}')
    result = run(args.config, args.rounds, args.warmup, args.batch_size,
                 args.size, args.device, args.amp, args.threads,
                 not args.no_memory, args.cfg_options, args.clock)
    print(format_result(result), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
