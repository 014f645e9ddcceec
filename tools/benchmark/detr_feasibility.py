"""Can these CPUs train a usable DETR-family teacher on the digits set?

Trains a digits DETR (``--model``: the DAB-DETR teacher or student,
``configs/bench/_base_/digits_dab-detr_*.py``, or the DINO ones,
``digits_dino_*.py``) alone on the benchmark's digits detection data,
with the benchmark's runner (AdamW, linear warm-up then cosine, gradient clipping at 10) at a
learning rate of your choice, evaluates it with COCO AP, and appends one
small record (metrics, iterations, learning rate, seconds, config hash) to
``--out`` (JSON lines), so the DETR rows of issue 19 start from measured
schedules; ``--eval-every N`` also evaluates every N iterations and
records the AP curve. Each run's folder in ``--work-dir`` is named by its
config hash; a run whose config hash already has a record in ``--out`` is
not trained again (its record is printed and returned; ``--force``
retrains), so the records resume on any machine as the accuracy
benchmark's do.

Example::

    OMP_NUM_THREADS=1 python tools/benchmark/detr_feasibility.py \
        --model teacher --iters 4000 --lr 4e-4 --eval-every 1000
"""
import argparse
import json
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import accuracy  # noqa: E402
from progress import ProgressHook  # noqa: E402  (tools/demo, via accuracy)

MODELS = {
    'teacher': osp.join(accuracy.BENCH, '_base_', 'digits_dab-detr_r18w32.py'),
    'student': osp.join(accuracy.BENCH, '_base_', 'digits_dab-detr_r18w16.py'),
    'dino-teacher': osp.join(accuracy.BENCH, '_base_', 'digits_dino_r18w32.py'),
    'dino-student': osp.join(accuracy.BENCH, '_base_', 'digits_dino_r18w16.py'),
}


class APCurveHook(Hook):
    """Collects ``(iteration, AP, AP50)`` at every validation."""

    priority = 'LOW'

    def __init__(self) -> None:
        self.curve: List[List[float]] = []

    def after_val_epoch(self, runner, metrics: Optional[Dict] = None
                        ) -> None:
        metrics = accuracy.read_metrics('det', metrics or {})
        self.curve.append([runner.iter, metrics['AP'], metrics['AP50']])


def recorded_run(path: str, key: str) -> Optional[dict]:
    """The last record of config hash ``key`` in the JSON lines at
    ``path`` (``None``: none, or no file)."""
    if not osp.exists(path):
        return None
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return next((r for r in reversed(records)
                 if r.get('config_hash') == key), None)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=sorted(MODELS), default='teacher')
    parser.add_argument('--iters', type=int, default=1500)
    parser.add_argument('--lr', type=float, default=2e-4)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--eval-every', type=int, default=0,
                        help='also evaluate every so many iterations: the '
                        'record gets the AP curve (default: at the end '
                        'only)')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=300)
    parser.add_argument('--work-dir', default='work_dirs/detr_feasibility')
    parser.add_argument('--force', action='store_true',
                        help='train even when --out has a record of this '
                        'config hash')
    parser.add_argument('--out', default=osp.join(
        accuracy.REPO, 'tools', 'benchmark', 'records',
        'detr_feasibility.jsonl'))
    args = parser.parse_args(argv)
    if args.iters < 1 or args.eval_every < 0:
        parser.error('--iters must be >= 1 and --eval-every >= 0')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data_root = accuracy.ensure_data('det', args.work_dir, args.num_train,
                                     args.num_val)
    model = Config.fromfile(MODELS[args.model]).model.to_dict()
    cfg = accuracy.task_runner_config('det', model, data_root, args.iters,
                                      args.seed, args.batch_size, 1)
    cfg.optim_wrapper.optimizer.lr = args.lr
    if args.eval_every:
        cfg.train_cfg.val_begin = args.eval_every
        cfg.train_cfg.val_interval = args.eval_every
    key = accuracy.config_hash(cfg, args.work_dir)
    recorded = None if args.force else recorded_run(args.out, key)
    if recorded is not None:
        print(f'recorded in {args.out}: {json.dumps(recorded)}')
        return recorded
    name = osp.splitext(osp.basename(MODELS[args.model]))[0]
    cfg.work_dir = osp.join(args.work_dir, f'{name}_{key}')
    runner = Runner.from_cfg(cfg)
    progress = ProgressHook(name, 100)
    curve = APCurveHook()
    runner.register_hook(progress)
    runner.register_hook(curve)
    start, cpu_start = time.time(), time.process_time()
    runner.train()
    cpu_seconds = time.process_time() - cpu_start
    if not curve.curve or curve.curve[-1][0] != args.iters:
        runner.val()
    record = dict(
        model=osp.relpath(MODELS[args.model], accuracy.REPO),
        iters=args.iters, lr=args.lr, batch_size=args.batch_size,
        seed=args.seed, AP=curve.curve[-1][1], AP50=curve.curve[-1][2],
        curve=curve.curve, s_per_iter=progress.seconds / args.iters,
        cpu_seconds=cpu_seconds, config_hash=key,
        num_train=args.num_train,
        wall_seconds=round(time.time() - start, 1),
        date=accuracy.utc_date(), machine=accuracy.machine())
    accuracy.emit_json_line(record, args.out)
    return record


if __name__ == '__main__':
    main()
