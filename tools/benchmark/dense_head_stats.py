"""What the dense-head terms of a digits distill config see, batch by batch.

For a distill config of the digits detection benchmark
(``configs/bench/det/``), its trained teacher and a student checkpoint
(e.g. the student alone at the end of its schedule), runs the distiller's
loss on training batches and reports, per dense-head term (averaged over
the batches):

- ``priors``: the priors the head's classification loss counts;
- ``avg_factor``: the head's own normaliser (its positives for a dense
  head, its sampled anchors for an RPN), and ``avg_factor / priors``: the
  weight a mean over the priors gives a term against the head's own loss;
- ``positives``;
- for ``TeacherBoundedRegression``: ``bound_open``, the fraction of the
  positives where ``‖R_s − y‖² + m > ‖R_t − y‖²`` lets the student's L2 to
  the ground truth through, and the mean squared errors of both models;
- each term's loss and the head's own ``loss_*`` values.

It explains why a term moves the student or not (docs/evidence.md); it
trains nothing and writes one JSON line to ``--out`` if given.

Example::

    python tools/benchmark/dense_head_stats.py \\
        configs/bench/det/bounded_regression_head_digits_gfl_r18w32_r18w16.py \\
        --teacher-checkpoint work_dirs/bench_det/det_teacher_*/iter_800.pth \\
        --student-checkpoint work_dirs/bench_det/det_student_seed0_*/iter_1200.pth \\
        --data work_dirs/bench_det/data_det_2000_300 --batches 10
"""
import argparse
import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional

import torch
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import accuracy  # noqa: E402

from mmkd.losses.dense_head_term import DenseHeadTerm  # noqa: E402
from mmkd.losses.localization import (  # noqa: E402
    TeacherBoundedRegression, bound_open, squared_errors)
from mmkd.utils.checkpoint import load_state_dict_strictly  # noqa: E402


def prediction_stats(term: DenseHeadTerm, preds) -> Dict[str, float]:
    """The counts (and for bounded regression the bound) of one step."""
    pos = preds.pos
    priors = float(preds.valid.sum())
    avg_factor = float(preds.avg_factor)
    stats = dict(priors=priors, positives=float(pos.sum()),
                 avg_factor=avg_factor,
                 avg_factor_over_priors=avg_factor / max(priors, 1.0))
    if isinstance(term, TeacherBoundedRegression) and pos.any():
        chosen = preds.select(pos)
        target = chosen.target_offsets()
        student_err, teacher_err = squared_errors(
            chosen.offsets('student'), chosen.offsets('teacher'), target)
        stats.update(
            bound_open=float(bound_open(student_err, teacher_err,
                                        term.margin).float().mean()),
            student_sq_error=float(student_err.mean()),
            teacher_sq_error=float(teacher_err.mean()))
    return stats


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a distill config of configs/bench/det')
    parser.add_argument('--teacher-checkpoint', required=True)
    parser.add_argument('--student-checkpoint',
                        help='weights for the student (a plain detector '
                        'checkpoint); default: the initialisation')
    parser.add_argument('--data', required=True,
                        help='the digits detection data folder the '
                        'benchmark made (work_dir/data_det_...)')
    parser.add_argument('--batches', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--out', help='append the result as a JSON line')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    for path in (args.teacher_checkpoint, args.student_checkpoint):
        if path and not osp.isfile(path):
            raise FileNotFoundError(f'No checkpoint at {path}.')
    if not osp.isfile(osp.join(args.data, 'train.json')):
        raise FileNotFoundError(
            f'{args.data} holds no train.json: give the data folder that '
            'tools/benchmark/accuracy.py made (work_dir/data_det_*).')
    torch.manual_seed(0)
    model = accuracy.distill_model(args.config, args.teacher_checkpoint)
    cfg = accuracy.task_runner_config('det', model, args.data, 1, 0,
                                      args.batch_size, 0)
    cfg.work_dir = osp.join('work_dirs', 'dense_head_stats')
    runner = Runner.from_cfg(cfg)  # sets the default scope mmdet
    distiller = runner.model
    if args.student_checkpoint:
        state = torch.load(args.student_checkpoint, map_location='cpu',
                           weights_only=False)
        load_state_dict_strictly(distiller.student, state,
                                 args.student_checkpoint, owner='student')
    seen: Dict[str, List[Dict[str, float]]] = {}
    for name, term in distiller.distill_terms.items():
        if isinstance(term, DenseHeadTerm):
            def loss(preds, term=term, name=name, inner=term.loss):
                seen.setdefault(name, []).append(prediction_stats(term, preds))
                return inner(preds)
            term.loss = loss
    if not seen and not any(isinstance(t, DenseHeadTerm)
                            for t in distiller.distill_terms.values()):
        raise ValueError(f'{args.config} has no dense-head term.')
    losses: Dict[str, List[float]] = {}
    distiller.train()
    with torch.no_grad():
        for i, batch in enumerate(runner.train_dataloader):
            if i == args.batches:
                break
            data = distiller.data_preprocessor(batch, True)
            for key, value in distiller.loss(**data).items():
                if key.startswith('loss'):
                    value = sum(value) if isinstance(value, list) else value
                    losses.setdefault(key, []).append(float(value))
    result = dict(
        config=osp.relpath(osp.abspath(args.config), accuracy.REPO),
        student_checkpoint=args.student_checkpoint, batches=args.batches,
        batch_size=args.batch_size,
        terms={name: {k: statistics.fmean(s[k] for s in steps if k in s)
                      for k in steps[0]} for name, steps in seen.items()},
        losses={k: statistics.fmean(v) for k, v in losses.items()},
        date=accuracy.utc_date())
    accuracy.emit_json_line(result, args.out)
    return result


if __name__ == '__main__':
    main()
