"""tools/benchmark/dense_head_stats.py on a tiny digits set with random
teacher and student weights: the counts it reports are the head's."""
import os.path as osp
import sys

import pytest
from conftest import REPO, save_teacher
from mmengine.config import Config
from mmengine.registry import DefaultScope

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))

import accuracy  # noqa: E402
import dense_head_stats  # noqa: E402

BENCH = osp.join(REPO, 'configs', 'bench')


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp('stats')
    data = accuracy.ensure_data('det', str(root), 4, 2)
    teacher = Config.fromfile(osp.join(BENCH, '_base_',
                                       'digits_gfl_r18w32.py')).model
    student = Config.fromfile(osp.join(BENCH, '_base_',
                                       'digits_gfl_r18w16.py')).model
    return dict(
        data=data,
        teacher=save_teacher(teacher.to_dict(), str(root / 't.pth'), 'mmdet'),
        student=save_teacher(student.to_dict(), str(root / 's.pth'), 'mmdet'))


def _run(digits, config, **kwargs):
    argv = [osp.join(BENCH, 'det', config), '--teacher-checkpoint',
            digits['teacher'], '--student-checkpoint', digits['student'],
            '--data', digits['data'], '--batches', '1', '--batch-size', '2']
    try:
        return dense_head_stats.main(argv)
    finally:
        DefaultScope._instance_dict.clear()  # the runner's scope


def test_bounded_regression_reports_the_bound_and_the_counts(digits):
    result = _run(digits, 'bounded_regression_head_digits_gfl_r18w32_'
                  'r18w16.py')
    stats = result['terms']['box']
    # GFL (no sampler): its avg_factor is its positives
    assert stats['avg_factor'] == pytest.approx(stats['positives'])
    assert 0 < stats['positives'] < stats['priors']
    assert stats['avg_factor_over_priors'] == pytest.approx(
        stats['avg_factor'] / stats['priors'])
    assert 0.0 <= stats['bound_open'] <= 1.0
    assert stats['student_sq_error'] >= 0 and stats['teacher_sq_error'] >= 0
    assert {'loss_distill_box', 'loss_cls', 'loss_bbox'} <= set(
        result['losses'])


def test_soft_targets_have_no_bound_and_missing_data_is_named(digits):
    result = _run(digits, 'soft_targets_head_digits_gfl_r18w32_r18w16.py')
    assert 'bound_open' not in result['terms']['soft']
    with pytest.raises(FileNotFoundError, match='no train.json'):
        dense_head_stats.main([
            osp.join(BENCH, 'det',
                     'soft_targets_head_digits_gfl_r18w32_r18w16.py'),
            '--teacher-checkpoint', digits['teacher'], '--data', '/nowhere'])
