"""tools/benchmark/train_step_speed.py on a tiny batch: it builds and steps
every configuration and reports what it trained."""
import json
import os.path as osp
import sys

import pytest

from conftest import REPO

BENCHMARK_DIR = osp.join(REPO, 'tools', 'benchmark')
sys.path.insert(0, BENCHMARK_DIR)


def test_benchmark_times_every_configuration(tmp_path, capsys):
    from train_step_speed import main
    out = tmp_path / 'speed.json'
    main(['--iters', '1', '--warmup', '0', '--batch-size', '2', '--size',
          '64', '--threads', '2', '--out', str(out)])
    results = json.loads(out.read_text())
    assert list(results) == ['teacher', 'student', 'student + KD (neck)',
                             'student + KD (head)']
    for row in results.values():
        assert row['mean_s'] > 0 and row['median_s'] > 0
    student = results['student']['trainable_params']
    # one 1x1 adaptor (32 -> 64, with bias) a level, three levels
    adaptors = 3 * (32 * 64 + 64)
    assert results['student + KD (neck)']['trainable_params'] == \
        student + adaptors
    assert results['student + KD (head)']['trainable_params'] == \
        student + adaptors
    assert results['teacher']['trainable_params'] > 3 * student
    assert 'student + KD (head)' in capsys.readouterr().out


def test_benchmark_refuses_amp_on_the_cpu():
    from train_step_speed import main
    with pytest.raises(SystemExit):
        main(['--amp', '--device', 'cpu'])


def test_term_overhead_times_student_teacher_read_and_distiller(tmp_path):
    from term_overhead import main
    config = osp.join(REPO, 'configs', 'bench', 'det',
                      'feature_imitation_neck_digits_gfl_r18w32_r18w16.py')
    out = tmp_path / 'overhead.json'
    result = main([config, '--rounds', '2', '--warmup', '0', '--size', '64',
                   '--threads', '2', '--no-memory', '--out', str(out)])
    assert json.loads(out.read_text())['ratio'] == result['ratio']
    timings = result['timings']
    assert list(timings) == ['student', 'teacher read', 'distill']
    median = {name: t['median_s'] for name, t in timings.items()}
    assert all(value > 0 for value in median.values())
    assert result['ratio'] == pytest.approx(
        median['distill'] / (median['student'] + median['teacher read']))
    assert 'memory_ratio' not in result


def test_term_overhead_refuses_a_config_that_is_not_a_distiller():
    from term_overhead import load_config
    student = osp.join(REPO, 'configs', 'bench', '_base_',
                       'digits_gfl_r18w16.py')
    with pytest.raises(ValueError, match='mmkd.Distiller'):
        load_config(student, '/nonexistent')


def test_rss_peak_sees_a_short_lived_allocation(tmp_path):
    """In a fresh interpreter with the tool's malloc setting (as its memory
    workers run), so that pages freed by earlier tests of this process
    cannot absorb the allocation."""
    import os
    import subprocess
    script = tmp_path / 'peak.py'
    script.write_text(f"""
import sys, time
sys.path.insert(0, {BENCHMARK_DIR!r})
import torch
from term_overhead import _RssPeak, _rss_mib
before = _rss_mib()
with _RssPeak() as peak:
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    time.sleep(0.3)
    del block
after = _rss_mib()
print(peak.peak - before, peak.peak - after)
""")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024))
    out = subprocess.run([sys.executable, str(script)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rise, fall = map(float, out.stdout.split()[-2:])
    assert rise > 48  # the 64 MiB block was seen while it lived
    assert fall > 48  # and left the RSS when freed
