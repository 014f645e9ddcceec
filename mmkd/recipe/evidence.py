"""The digits benchmark rows the recipe's reasons cite.

Each entry is one row of ``docs/benchmarks*.json`` (written by
``tools/benchmark/accuracy.py``, three seeds): the paired gain of the
distilled student over the student alone (the mean over seeds of the
per-seed difference) and how many seeds improved. The recipe quotes them
in the comment of every term it picks or leaves out; a test checks them
against the JSON files, so a re-run benchmark that moves a number fails
it until this table (and maybe a rule) follows.
"""
from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class Evidence:
    """One measured benchmark row.

    Attributes:
        table: the ``docs/<table>.json`` file it is read from.
        suite: the benchmark suite (``det``, ``det_samehead``,
            ``det_rcnn``, ``det_atss``, ``seg``).
        method: the row's method name.
        gain: the paired gain (AP for detection, mIoU % for segmentation).
        seeds_up: seeds on which the distilled student beat the student.
        seeds: seeds run.
    """
    table: str
    suite: str
    method: str
    gain: float
    seeds_up: int
    seeds: int = 3

    @property
    def metric(self) -> str:
        return 'mIoU' if self.suite.startswith('seg') else 'AP'

    def __str__(self) -> str:
        return (f'digits {self.suite} `{self.method}`: {self.gain:+.3g} '
                f'{self.metric} ({self.seeds_up}/{self.seeds} seeds up)')


def _rows(table: str, *rows: Tuple[str, str, float, int]
          ) -> Dict[Tuple[str, str], Evidence]:
    return {(suite, method): Evidence(table, suite, method, gain, up)
            for suite, method, gain, up in rows}


#: ``(suite, method) -> Evidence`` for every row a reason cites
EVIDENCE: Dict[Tuple[str, str], Evidence] = {
    **_rows('benchmarks_600it',
            ('det', 'feature_imitation', 0.251, 3),
            ('det', 'cwd', 0.231, 3),
            ('det', 'fgfi', 0.223, 3),
            ('det', 'mgd', 0.218, 3),
            ('det', 'pkd', 0.217, 3),
            ('det', 'ld', 0.204, 3),
            ('det', 'bckd', 0.054, 2),
            ('det', 'fgd', 0.041, 2),
            ('det', 'soft_targets', 0.032, 2),
            ('det', 'bounded_regression', 0.005, 2),
            ('det_samehead', 'ld', 0.214, 3),
            ('det_samehead', 'crosskd', 0.203, 3),
            ('det_rcnn', 'chen2017', 0.157, 3),
            ('det_rcnn', 'feature_imitation', 0.111, 3),
            ('det_rcnn', 'soft_targets+bounded_regression', 0.026, 3),
            ('seg', 'cwd', 32.257, 3),
            ('seg', 'dist', 19.313, 3),
            ('seg', 'pixel', 1.167, 2),
            ('seg', 'pixel+pair', 0.5, 1),
            ('seg', 'pixel+pair+adversarial', 3.67, 3),
            ('seg', 'feature_imitation', -10.183, 1)),
    **_rows('benchmarks_classic',
            ('det', 'dkd', 0.073, 3),
            ('seg', 'at', -6.7, 1),
            ('seg', 'nst', -8.9, 1),
            ('seg', 'fsp', -9.767, 0)),
    **_rows('benchmarks_roles',
            ('det_atss', 'pkd', 0.254, 3)),
}


def evidence(suite: str, method: str) -> Evidence:
    """The benchmark row ``method`` of ``suite``.

    Raises:
        KeyError: the recipe cites a row this table does not hold.
    """
    try:
        return EVIDENCE[(suite, method)]
    except KeyError:
        raise KeyError(f'No digits benchmark row {suite}:{method} in '
                       'mmkd.recipe.evidence.EVIDENCE.') from None
