"""How far trained students are from their teacher in a term's own metric.

For a benchmark distill config (``configs/bench/...``), a trained teacher
and one or more student checkpoints, runs the distiller's loss, without
gradients and with every model in eval mode, on training batches and
reports the mean of each ``loss_distill_<term>`` and of the task loss per
student. A student trained alone whose distance is already close to the
distilled student's learned what the term teaches from its labels, so the
term has little to add at that scale (docs/evidence.md); a freshly
initialised student (``init``) gives the scale of the distance.

A critic-based term (SKD's holistic adversarial term) is measured against
its critic as built, untrained: its value here means nothing; read its
critic's loss from the run's record instead.

Example::

    python tools/benchmark/term_distance.py \\
        --config configs/bench/seg/pair_head_digits_fcn_r18w32_r18w16-d8.py \\
        --teacher-checkpoint work_dirs/bench_seg/seg_teacher_*/iter_2000.pth \\
        --student init \\
        --student work_dirs/bench_seg/seg_student_seed0_*/iter_3000.pth \\
        --student work_dirs/bench_seg/seg_pair_seed0_*/iter_3000.pth \\
        --data work_dirs/bench_seg/data_seg_region_2000_300
"""
import argparse
import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import accuracy  # noqa: E402

from mmkd.utils.checkpoint import load_state_dict_strictly  # noqa: E402

INIT = 'init'


def student_prefix(checkpoint: dict) -> Optional[str]:
    """``'student.'`` for a distiller's checkpoint, ``None`` for a plain
    model's."""
    state = checkpoint.get('state_dict', checkpoint)
    return 'student.' if any(k.startswith('student.') for k in state) \
        else None


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', required=True,
                        help='a benchmark distill config')
    parser.add_argument('--teacher-checkpoint', required=True)
    parser.add_argument('--student', action='append', required=True,
                        help=f'a student checkpoint (plain or a '
                        f'distiller\'s), or {INIT!r} for a freshly '
                        f'initialised student; repeat for several')
    parser.add_argument('--data', required=True,
                        help='the data folder the benchmark made '
                        '(work_dir/data_...)')
    parser.add_argument('--batches', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0,
                        help='the seed of the data order and of init')
    parser.add_argument('--out', help='append the result as a JSON line')
    return parser.parse_args(argv)


def _distances(cfg: Config, student: str, args: argparse.Namespace
               ) -> Dict[str, float]:
    # a runner of its own for each student: each sees the same batches in
    # the same order, and ``init`` a fresh initialisation of that seed
    runner = Runner.from_cfg(cfg.copy())
    model = runner.model
    if student != INIT:
        checkpoint = torch.load(student, map_location='cpu',
                                weights_only=False)
        load_state_dict_strictly(model.student, checkpoint, student,
                                 strip_prefix=student_prefix(checkpoint),
                                 owner='student')
    model.eval()
    steps: List[Dict[str, float]] = []
    with torch.no_grad():
        for i, batch in enumerate(runner.train_dataloader):
            if i == args.batches:
                break
            data = model.data_preprocessor(batch, True)
            losses = model(**data, mode='loss')
            steps.append({k: float(sum(v) if isinstance(v, list) else v)
                          for k, v in losses.items()
                          if k.startswith('loss') or '.loss' in k})
    return {k: statistics.fmean(s[k] for s in steps) for k in steps[0]}


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    for path in [args.teacher_checkpoint] + args.student:
        if path != INIT and not osp.isfile(path):
            raise FileNotFoundError(f'No checkpoint at {path}.')
    if not osp.isdir(args.data):
        raise FileNotFoundError(
            f'No data folder at {args.data}: give the one '
            'tools/benchmark/accuracy.py made (work_dir/data_*).')
    method = Config.fromfile(args.config)
    task = 'seg' if method.get('default_scope') == 'mmseg' else 'det'
    model = accuracy.distill_model(args.config, args.teacher_checkpoint)
    cfg = accuracy.task_runner_config(task, model, args.data, 1, args.seed,
                                      args.batch_size, 0)
    cfg.work_dir = osp.join('work_dirs', 'term_distance')
    result = dict(config=args.config,
                  teacher_checkpoint=args.teacher_checkpoint,
                  batches=args.batches, batch_size=args.batch_size,
                  seed=args.seed, students={})
    try:
        for student in args.student:
            torch.manual_seed(args.seed)
            result['students'][student] = _distances(cfg, student, args)
    finally:
        DefaultScope._instance_dict.clear()  # the runners' scopes
    result['date'] = accuracy.utc_date()
    accuracy.emit_json_line(result, args.out)
    return result


if __name__ == '__main__':
    main()
