"""Born-again generations: train one architecture N + 1 times, each
generation distilled from the one before (Furlanello et al., "Born-Again
Neural Networks", ICML 2018).

Generation 0 is the student of an mmkd distill config trained alone: the
config's ``model.student`` with the config's own dataloaders, optimizer
and schedule, no distiller. Generation k >= 1 is the config's distiller
with its teacher replaced by generation k - 1: ``teacher.config`` is the
student's own model config and ``teacher.checkpoint`` generation k - 1's
checkpoint extracted to a plain student checkpoint (as
``tools/extract_student.py`` does). The config's own teacher is never
built, so its architecture does not matter; its other options
(``autocast``, ``inputs``) are kept. The distill terms are used as given:
from generation 1 on they read the student's architecture on both sides,
so generation 1's distiller is built once, with a randomly initialised
student as its teacher, before anything trains: a term that does not fit
fails in seconds with the distiller's message.

Each generation trains in ``WORK_DIR/gen_<k>/`` with MMEngine's Runner as
``tools/train.py`` builds it (the same ``--amp`` and checkpoint guard), is
evaluated on the val set (``runner.val()``) and leaves there the runner's
checkpoints and logs, ``config.py`` (the config it trained with),
``student.pth`` (the plain student checkpoint: mmdet/mmseg load it with no
mmkd import; test any generation with ``gen_0/config.py``) and
``result.json`` (metrics, checkpoints, seconds). At the end a table
``generation | teacher | AP`` (``mIoU`` for segmentation) is printed and
written to ``WORK_DIR/born_again.json``.

Every generation trains under the config's ``randomness``: with a seed,
all of them start from the same initialisation and see the same data
order, so generation k and k + 1 differ only by the teacher.

``--resume-generations`` keeps the generations whose final checkpoint and
``result.json`` exist, resumes an interrupted one from its latest
checkpoint and trains the rest. A generation trained from another config
(say, another schedule) is refused rather than mixed in, and without the
flag a work dir that already holds generations is refused: nothing on
disk is ever overwritten by mistake.

Usage::

    python tools/born_again.py CONFIG [--generations 2] [--work-dir DIR]
        [--resume-generations] [--amp] [--cfg-options key=value ...]
        [--launcher pytorch]
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.dist import barrier, is_main_process
from mmengine.registry import MODELS, DefaultScope

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmkd  # noqa: E402,F401  (registers mmkd and safe checkpoint types)
from extract_student import PREFIX as STUDENT_PREFIX  # noqa: E402
from extract_student import extract_student, save_checkpoint  # noqa: E402
from mmkd.optim import uses_adversarial_constructor  # noqa: E402
from mmkd.utils import load_state_dict_file  # noqa: E402
from mmkd.utils.annotations import annotation_errors_named  # noqa: E402
from mmkd.utils.cli import add_runner_args, load_runner_config  # noqa: E402
from mmkd.utils.resume import latest_checkpoint  # noqa: E402
from train import build_runner, prepare_training  # noqa: E402

#: ``(metric key of runner.val(), column label)``, the first one present
#: is the generation's headline metric
HEADLINE_METRICS = (('coco/bbox_mAP', 'AP'), ('coco/segm_mAP', 'mask AP'),
                    ('pascal_voc/mAP', 'mAP'), ('mIoU', 'mIoU'))
#: hooks that act on a distiller, left out of generation 0
DISTILLER_HOOKS = ('DistillSwitchHook', )
#: DDP wrappers of a distiller, left out of generation 0
DISTILLER_WRAPPERS = ('AdversarialDistillerDDP', )
#: teacher options that name the teacher; the rest are kept
TEACHER_REFERENCE = ('config', 'checkpoint', 'strip_prefix')
#: settings that may change between a run and its resumption
RUN_SETTINGS = ('work_dir', 'experiment_name', 'launcher', 'resume',
                'load_from')
#: what building a model raises on a config mistake (mmdet asserts too)
BUILD_ERRORS = (AssertionError, FileNotFoundError, KeyError, RuntimeError,
                TypeError, ValueError)
RESULT = 'result.json'
GENERATION = 'generation.json'
STUDENT = 'student.pth'
SUMMARY = 'born_again.json'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train born-again generations of a distill config\'s '
        'student, each the teacher of the next')
    parser.add_argument('config', help='mmkd distill config file path')
    parser.add_argument(
        '--generations', type=int, default=2,
        help='distilled generations after generation 0 (default 2)')
    parser.add_argument(
        '--resume-generations', action='store_true',
        help='keep the finished generations of the work dir, resume an '
        'interrupted one, train the rest')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training')
    add_runner_args(parser)
    return parser.parse_args(argv)


def log(message: str) -> None:
    """Print ``message`` once (on the main process)."""
    if is_main_process():
        print(f'born_again: {message}', flush=True)


def _is_distiller_type(kind: object) -> bool:
    from mmkd.distillers import Distiller
    from mmkd.registry import MODELS as MMKD_MODELS
    if isinstance(kind, str):
        kind = MMKD_MODELS.get(kind) if kind.startswith('mmkd.') else None
    return isinstance(kind, type) and issubclass(kind, Distiller)


def check_distill_config(cfg: Config, path: str) -> None:
    """Refuse a config born-again cannot use, saying what to change.

    Args:
        cfg: the loaded config.
        path: its file, for the messages.

    Raises:
        SystemExit: the model is not an mmkd ``Distiller`` with
            ``student``, one frozen ``teacher`` and ``distill`` terms, or
            the config cannot be evaluated on a val set.
    """
    model = cfg.get('model')
    kind = model.get('type') if isinstance(model, dict) else None
    shape = ('dict(type="mmkd.Distiller", student=..., teacher=dict('
             'config=..., checkpoint=...), distill=dict(...))')
    if not _is_distiller_type(kind):
        raise SystemExit(
            f'born_again: {path} is not an mmkd distill config: its '
            f'model.type is {kind!r}, not "mmkd.Distiller". Give a config '
            f'whose model is {shape} (it may _base_ this one and use '
            '{{_base_.model}} as the student); train a plain mmdet/mmseg '
            'config with tools/train.py. Nothing was written.')
    missing = [key for key in ('student', 'teacher', 'distill')
               if not model.get(key)]
    if 'teachers' in model:
        raise SystemExit(
            f'born_again: {path} names model.teachers; born-again replaces '
            'one teacher by the previous generation: give model.teacher='
            'dict(config=..., checkpoint=...) instead. Nothing was written.')
    if missing:
        raise SystemExit(
            f'born_again: {path}: the distiller has no {missing}; it must '
            f'be {shape}. Nothing was written.')
    teacher = model.teacher
    if not isinstance(teacher, dict) or teacher.get('role',
                                                    'frozen') != 'frozen':
        raise SystemExit(
            f'born_again: {path}: model.teacher must be a frozen teacher, '
            'dict(config=..., checkpoint=...), which born-again replaces '
            f'by the previous generation; got {teacher!r}. Nothing was '
            'written.')
    no_val = [key for key in ('val_dataloader', 'val_cfg', 'val_evaluator')
              if not cfg.get(key)]
    if no_val:
        raise SystemExit(
            f'born_again: {path} has no {", ".join(no_val)}: every '
            'generation is evaluated on the val set (runner.val()), so the '
            'config needs val_dataloader, val_cfg and val_evaluator. '
            'Nothing was written.')


def student_config(cfg: Config) -> Config:
    """Generation 0's config: the distill config's student trained alone.

    The model is ``model.student``; an adversarial config's student
    optimizer wrapper and schedulers (``optim_wrapper.student``,
    ``param_scheduler.student``) replace the pair, and hooks and DDP
    wrappers that act on a distiller are left out.
    """
    gen = copy.deepcopy(cfg)
    gen.model = copy.deepcopy(cfg.model.student)
    if uses_adversarial_constructor(gen.get('optim_wrapper')):
        gen.optim_wrapper = gen.optim_wrapper.student
    schedulers = gen.get('param_scheduler')
    if isinstance(schedulers, dict) and 'student' in schedulers:
        gen.param_scheduler = schedulers['student']
    wrapper = gen.get('model_wrapper_cfg')
    if isinstance(wrapper, dict) and str(wrapper.get('type', '')).split(
            '.')[-1] in DISTILLER_WRAPPERS:
        gen.pop('model_wrapper_cfg')
    if gen.get('custom_hooks'):
        gen.custom_hooks = [
            hook for hook in gen.custom_hooks
            if str(hook.get('type', '')).split('.')[-1] not in
            DISTILLER_HOOKS]
    return gen


def distilled_model(model: dict, teacher_checkpoint: str) -> dict:
    """The distiller config ``model`` with its teacher replaced by the
    student's own architecture loaded from ``teacher_checkpoint`` (a plain
    student checkpoint)."""
    model = copy.deepcopy(model)
    options = {key: value for key, value in model.teacher.items()
               if key not in TEACHER_REFERENCE}
    model.teacher = dict(config=copy.deepcopy(model.student),
                         checkpoint=teacher_checkpoint, **options)
    return model


def generation_dir(work_dir: str, generation: int) -> str:
    return osp.join(work_dir, f'gen_{generation}')


def generation_config(cfg: Config, generation: int, work_dir: str,
                      experiment: str) -> Config:
    """The runner config of one generation (not yet prepared for
    training: see ``tools/train.py``'s ``prepare_training``)."""
    if generation == 0:
        gen = student_config(cfg)
    else:
        gen = copy.deepcopy(cfg)
        gen.model = distilled_model(cfg.model, osp.abspath(osp.join(
            generation_dir(work_dir, generation - 1), STUDENT)))
    gen.work_dir = generation_dir(work_dir, generation)
    # one MMEngine logger, message hub and visualizer per generation,
    # even when two start within the same second
    gen.experiment_name = f'{experiment}_gen{generation}'
    return gen


def fingerprint(cfg: Config, generation: int) -> dict:
    """What defines a generation's training: its config without the
    settings of one run (work dir, launcher, resumption), with the
    teacher checkpoint named relative to the work dir."""
    content = {key: value for key, value in cfg.to_dict().items()
               if key not in RUN_SETTINGS}
    if generation:
        content['model']['teacher']['checkpoint'] = \
            f'gen_{generation - 1}/{STUDENT}'
    return json.loads(json.dumps(content, sort_keys=True, default=str))


_MISSING = object()


def differences(old: object, new: object, prefix: str = '') -> List[str]:
    """Dotted keys at which two fingerprints differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += differences(old.get(key, _MISSING),
                                 new.get(key, _MISSING), f'{prefix}{key}.')
        return found
    return [] if old == new else [prefix.rstrip('.') or '(all)']


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_json(content: dict, path: str) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(content, f, indent=2)
    os.replace(tmp, path)  # never a half-written result


def generation_status(gen_dir: str) -> str:
    """``'done'`` (final checkpoint and result exist), ``'started'``
    (interrupted) or ``'new'``."""
    result = _read_json(osp.join(gen_dir, RESULT))
    if result is not None and osp.isfile(result.get('checkpoint', '')):
        return 'done'
    if any(osp.exists(osp.join(gen_dir, name))
           for name in (GENERATION, 'last_checkpoint', RESULT)):
        return 'started'
    return 'new'


def check_work_dir(work_dir: str, statuses: List[str],
                   fingerprints: List[dict], resume: bool) -> None:
    """Refuse a work dir whose generations a run would overwrite or mix
    with generations of another config.

    Raises:
        SystemExit: says which generation and what to do; nothing on disk
            has been changed.
    """
    found = [f'gen_{k}' for k, status in enumerate(statuses)
             if status != 'new']
    if not resume:
        if found or osp.isfile(osp.join(work_dir, SUMMARY)):
            raise SystemExit(
                f'born_again: {work_dir} already holds born-again '
                f'generations ({", ".join(found) or SUMMARY}): pass '
                '--resume-generations to keep and reuse them, or give '
                'another --work-dir. Nothing was changed.')
        return
    first_todo = next((k for k, s in enumerate(statuses) if s != 'done'),
                      len(statuses))
    stale = [f'gen_{k}' for k in range(first_todo + 1, len(statuses))
             if statuses[k] != 'new']
    if stale:
        raise SystemExit(
            f'born_again: gen_{first_todo} of {work_dir} is not finished '
            f'but {", ".join(stale)} exist(s): they were taught by another '
            f'gen_{first_todo}. Delete them to retrain them after it, or '
            'give another --work-dir. Nothing was changed.')
    for k, status in enumerate(statuses):
        gen_dir = generation_dir(work_dir, k)
        recorded = _read_json(osp.join(gen_dir, GENERATION))
        if status == 'new' or recorded is None:
            continue
        changed = differences(recorded.get('config'), fingerprints[k])
        if changed:
            raise SystemExit(
                f'born_again: {gen_dir} was trained from another config '
                f'(it differs in {", ".join(changed[:6])}). Restore those '
                'settings, give another --work-dir, or delete '
                f'{gen_dir} and the later generations to retrain them. '
                'Nothing was changed.')


def _build_error_message(err: Exception) -> str:
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err)


def check_distilled_generation(cfg: Config, generation: int) -> None:
    """Build a distilled generation's model once, before anything trains,
    with a randomly initialised student as its teacher (in a temporary
    folder), so that a distill term that cannot read the student's
    architecture fails now, with the distiller's message.

    Raises:
        SystemExit: the student or the distiller cannot be built; the
            message names the generation.
    """
    model = copy.deepcopy(cfg.model)
    scope = cfg.get('default_scope')
    with tempfile.TemporaryDirectory() as tmp, \
            torch.random.fork_rng(devices=[]), \
            DefaultScope.overwrite_default_scope(scope):
        try:
            student = MODELS.build(copy.deepcopy(model.student))
        except BUILD_ERRORS as err:
            raise SystemExit(
                f'born_again: the student (model.student) cannot be built: '
                f'{_build_error_message(err)}') from err
        path = osp.join(tmp, STUDENT)
        torch.save(dict(state_dict=student.state_dict()), path)
        del student
        model.teacher.checkpoint = path
        try:
            MODELS.build(model)
        except BUILD_ERRORS as err:
            raise SystemExit(
                f'born_again: generation {generation} (the student taught '
                f'by gen_{generation - 1}, the student\'s own architecture) '
                f'cannot be built: {_build_error_message(err)}\nFrom '
                'generation 1 on the teacher is the student itself, so '
                'every distill term must read modules the student has '
                '(its teacher= paths are student module names). Nothing '
                'was trained.') from err


def headline_metric(metrics: Dict[str, object]) -> Tuple[str, str, float]:
    """``(label, key, value)`` of a generation's main val metric."""
    for key, label in HEADLINE_METRICS:
        if key in metrics:
            return label, key, float(metrics[key])
    if not metrics:
        # mmdet's CocoMetric returns nothing when no box clears score_thr
        log('no detections on the val set: AP = 0')
        return 'AP', 'coco/bbox_mAP', 0.0
    key = next(iter(metrics))
    return key, key, float(metrics[key])


def _jsonable(value: object) -> object:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def final_checkpoint(runner: object) -> str:
    """The checkpoint the runner saved last (``CheckpointHook`` saves one
    at the end by default), or one saved now when it saved none."""
    barrier()
    latest = latest_checkpoint(runner.work_dir)
    if latest is None or not osp.isfile(latest):
        runner.save_checkpoint(runner.work_dir, 'final.pth')
        barrier()
        latest = osp.join(runner.work_dir, 'final.pth')
    return osp.abspath(latest)


def train_generation(cfg: Config, generation: int, content: dict) -> Dict:
    """Train, evaluate and record one generation.

    Args:
        cfg: its runner config, prepared for training.
        generation: its index (0: the student alone).
        content: its :func:`fingerprint`, recorded before it trains.

    Returns:
        Its ``result.json`` content.
    """
    gen_dir = cfg.work_dir
    teacher = f'gen_{generation - 1}' if generation else None
    if is_main_process():
        os.makedirs(gen_dir, exist_ok=True)
        _write_json(dict(generation=generation, teacher=teacher,
                         config=content), osp.join(gen_dir, GENERATION))
        cfg.dump(osp.join(gen_dir, 'config.py'))
    barrier()
    log(f'gen_{generation}: training ' + (
        f'with {teacher} as its teacher' if teacher else 'the student alone')
        + f' in {gen_dir}')
    start = time.time()
    with annotation_errors_named(cfg):
        try:
            runner = build_runner(cfg)
        except BUILD_ERRORS as err:
            raise SystemExit(
                f'born_again: generation {generation} cannot be built: '
                f'{_build_error_message(err)}') from err
        runner.train()
        metrics = {key: _jsonable(value)
                   for key, value in runner.val().items()}
    seconds = time.time() - start
    checkpoint = final_checkpoint(runner)
    del runner
    student = osp.abspath(osp.join(gen_dir, STUDENT))
    if is_main_process():
        save_checkpoint(extract_student(
            load_state_dict_file(checkpoint),
            STUDENT_PREFIX if generation else ''), student)
    label, key, value = headline_metric(metrics)
    result = dict(
        generation=generation, teacher=teacher,
        teacher_checkpoint=cfg.model.teacher.checkpoint if generation
        else None,
        checkpoint=checkpoint, student_checkpoint=student,
        config=osp.abspath(osp.join(gen_dir, 'config.py')),
        metric=label, metric_key=key, value=value, metrics=metrics,
        seconds=round(seconds, 1))
    if is_main_process():
        _write_json(result, osp.join(gen_dir, RESULT))
    barrier()
    log(f'gen_{generation}: {label} {value:.4g} ({seconds:.0f} s)')
    return result


def kept_generation(gen_dir: str, generation: int) -> Dict:
    """A finished generation's result, its ``student.pth`` re-extracted if
    it went missing."""
    result = _read_json(osp.join(gen_dir, RESULT))
    student = result.get('student_checkpoint') or osp.join(gen_dir, STUDENT)
    if not osp.isfile(student) and is_main_process():
        save_checkpoint(extract_student(
            load_state_dict_file(result['checkpoint']),
            STUDENT_PREFIX if generation else ''), student)
    barrier()
    log(f'gen_{generation}: kept ({osp.join(gen_dir, RESULT)}), not '
        'retrained')
    return result


def _format_value(value: float, label: str) -> str:
    if not math.isfinite(value):
        return str(value)
    return f'{value:.2f}' if label == 'mIoU' else f'{value:.3f}'


def format_table(rows: List[Dict]) -> str:
    """``generation | teacher | AP | seconds``, one row per generation."""
    label = rows[0]['metric'] if rows else 'AP'
    header = ['generation', 'teacher', label, 'seconds']
    body = [[str(r['generation']), r['teacher'] or '-',
             _format_value(r['value'], label), f'{r["seconds"]:.0f}']
            for r in rows]
    widths = [max(len(line[i]) for line in [header] + body)
              for i in range(len(header))]
    lines = [' | '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
             for line in [header, ['-' * w for w in widths]] + body]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    """Run born-again generations; returns one result per generation."""
    args = parse_args(argv)
    if args.generations < 1:
        raise SystemExit(
            f'born_again: --generations must be at least 1 (the number of '
            f'distilled generations after generation 0); got '
            f'{args.generations}. Nothing was written.')
    cfg = load_runner_config(args)
    check_distill_config(cfg, args.config)
    work_dir = cfg.work_dir
    experiment = cfg.get('experiment_name') or osp.splitext(
        osp.basename(args.config))[0]
    count = args.generations + 1
    statuses = [generation_status(generation_dir(work_dir, k))
                for k in range(count)]
    configs, fingerprints = [], []
    for k in range(count):
        gen = generation_config(cfg, k, work_dir, experiment)
        resume = args.resume_generations and statuses[k] == 'started'
        try:
            prepare_training(gen, amp=args.amp,
                             resume='auto' if resume else None)
        except SystemExit as err:  # a corrupt latest checkpoint
            raise SystemExit(
                f'born_again: gen_{k} cannot be resumed. {err} With '
                f'born_again.py, name a good checkpoint in '
                f'{gen.work_dir}/last_checkpoint, or delete {gen.work_dir} '
                'to train that generation again.') from err
        configs.append(gen)
        fingerprints.append(fingerprint(gen, k))
    check_work_dir(work_dir, statuses, fingerprints,
                   args.resume_generations)
    todo = [k for k in range(1, count) if statuses[k] != 'done']
    if todo:
        check_distilled_generation(configs[todo[0]], todo[0])

    rows = []
    for k in range(count):
        gen_dir = generation_dir(work_dir, k)
        if statuses[k] == 'done':
            rows.append(kept_generation(gen_dir, k))
        else:
            if statuses[k] == 'started':
                log(f'gen_{k}: interrupted, resuming from '
                    f'{latest_checkpoint(gen_dir) or "its start"}')
            rows.append(train_generation(configs[k], k, fingerprints[k]))
    table = format_table(rows)
    log(f'{args.generations} born-again generation(s) of '
        f'{args.config}:\n{table}')
    if is_main_process():
        _write_json(dict(config=osp.abspath(args.config),
                         work_dir=osp.abspath(work_dir),
                         metric=rows[0]['metric'], table=table,
                         generations=rows),
                    osp.join(work_dir, SUMMARY))
    return rows


if __name__ == '__main__':
    main()
