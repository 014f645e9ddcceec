"""Can these CPUs train a usable DETR-family teacher on the digits set?

Trains the digits DAB-DETR (``configs/bench/_base_/digits_dab-detr_*.py``)
alone on the benchmark's digits detection data, with the benchmark's
runner (AdamW, linear warm-up then cosine, gradient clipping at 10) at a
learning rate of your choice, evaluates it with COCO AP, and appends one
small record (metrics, iterations, learning rate, seconds, config hash) to
``--out`` (JSON lines), so the DETR rows of issue 19 start from measured
schedules. Runs are cached by config hash in ``--work-dir``, as the
accuracy benchmark's are.

Example::

    OMP_NUM_THREADS=1 python tools/benchmark/detr_feasibility.py \
        --model teacher --iters 1500 --lr 2e-4 --threads 1
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import accuracy  # noqa: E402

MODELS = dict(
    teacher=osp.join(accuracy.BENCH, '_base_', 'digits_dab-detr_r18w32.py'),
    student=osp.join(accuracy.BENCH, '_base_', 'digits_dab-detr_r18w16.py'))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=sorted(MODELS), default='teacher')
    parser.add_argument('--iters', type=int, default=1500)
    parser.add_argument('--lr', type=float, default=2e-4)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--work-dir', default='work_dirs/detr_feasibility')
    parser.add_argument('--out', default=osp.join(
        accuracy.REPO, 'tools', 'benchmark', 'records',
        'detr_feasibility.jsonl'))
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data_root = accuracy.ensure_data('det', args.work_dir, 2000, 300)
    model = Config.fromfile(MODELS[args.model]).model.to_dict()
    cfg = accuracy.task_runner_config('det', model, data_root, args.iters,
                                      args.seed, args.batch_size, 1)
    cfg.optim_wrapper.optimizer.lr = args.lr
    start = time.time()
    result = accuracy.run_cached('det', f'dab-detr_{args.model}', cfg,
                                 args.work_dir, 100)
    record = dict(
        model=osp.relpath(MODELS[args.model], accuracy.REPO),
        iters=args.iters, lr=args.lr, batch_size=args.batch_size,
        seed=args.seed, AP=result['AP'], AP50=result['AP50'],
        s_per_iter=result['s_per_iter'],
        cpu_seconds=result.get('cpu_seconds'),
        config_hash=accuracy.config_hash(cfg),
        wall_seconds=round(time.time() - start, 1),
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        machine=accuracy.machine())
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'a') as f:
        f.write(json.dumps(record) + '\n')
    print(json.dumps(record))
    return record


if __name__ == '__main__':
    main()
