"""Each logged loss of benchmark runs, averaged over thirds of training.

Reads the run records of ``tools/benchmark/accuracy.py``
(``tools/benchmark/records/runs/*.json``, each with its loss curves) and
prints, per run and loss, the mean over the first, middle and last third
of its logged points. It shows what a term did during training without a
checkpoint: e.g. a WGAN-GP critic whose loss (``loss_discriminator_*``,
``D(student) - D(teacher)`` plus its gradient penalty) sits at 0 in the
last third no longer tells the student's maps from the teacher's, so the
student's adversarial term carries no teacher signal there.

Example::

    python tools/benchmark/record_losses.py \\
        tools/benchmark/records/runs/seg_adversarial_seed*.json
"""
import argparse
import json
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence


def thirds(values: Sequence[float]) -> List[float]:
    """The means of the first, middle and last third of ``values`` (the
    last third takes what does not divide)."""
    if len(values) < 3:
        raise ValueError(f'{len(values)} logged values cannot be split into '
                         'thirds.')
    n = len(values) // 3
    parts = (values[:n], values[n:2 * n], values[2 * n:])
    return [statistics.fmean(part) for part in parts]


def summarise(record: Dict) -> Dict[str, List[float]]:
    """Every loss curve of one run record as its three thirds' means."""
    losses = record.get('losses')
    if not losses:
        raise ValueError(f"Run record {record.get('name')!r} holds no loss "
                         'curves (records before 2026-12 did not).')
    return {name: thirds(curve) for name, curve in losses.items()}


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('records', nargs='+', help='run record files')
    args = parser.parse_args(argv)
    result = {}
    for path in args.records:
        with open(path) as f:
            record = json.load(f)
        result[osp.basename(path)] = summary = summarise(record)
        print(f"{record.get('name', path)} ({record.get('iters')} it, "
              f"{record.get('mIoU', record.get('AP'))}):")
        for name, (first, middle, last) in summary.items():
            print(f'  {name:<36} {first:9.4f} {middle:9.4f} {last:9.4f}')
    return result


if __name__ == '__main__':
    main()
