"""tools/benchmark/train_step_speed.py on a tiny batch: it builds and steps
every configuration and reports what it trained."""
import json
import math
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
    # the CPU clock by default on the CPU; with two threads the process's
    assert result['clock'] == 'cpu'
    assert result['clock_source'] == 'time.process_time'
    assert result['other_clock']['clock'] == 'wall'
    assert math.isfinite(result['other_clock']['ratio'])
    assert result['other_clock']['ratio'] > 0
    assert not result['adversarial_train_step']
    assert 'teacher_roi_head' not in result


def test_term_overhead_cpu_clock_is_one_threads_cpu_time(capsys):
    """A sleeping step takes wall time but no CPU time: the chosen clock
    is the one the medians and the printed result report."""
    import time

    import torch
    from term_overhead import time_interleaved
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps = {'student': lambda: time.sleep(0.05),
                 'teacher read': lambda: time.sleep(0.05),
                 'distill': lambda: sum(range(20000))}
        cpu = time_interleaved(steps, 2, 0, torch.device('cpu'), 'cpu')
        wall = time_interleaved(steps, 2, 0, torch.device('cpu'), 'wall')
    finally:
        torch.set_num_threads(threads)
    assert cpu['distill']['median_s'] > 0  # busy: CPU time
    # sleeping costs the thread (almost) no CPU time, but 50 ms of wall
    assert cpu['student']['median_s'] < 0.025
    assert cpu['student']['other_clock']['clock'] == 'wall'
    assert cpu['student']['other_clock']['median_s'] >= 0.05
    assert wall['student']['median_s'] >= 0.05
    assert wall['student']['other_clock']['clock'] == 'cpu'
    assert wall['student']['other_clock']['median_s'] < 0.025


def test_term_overhead_section_timer_sums_until_read():
    from term_overhead import SectionTimer
    ticks = iter([1.0, 3.0, 10.0, 10.5])
    timer = SectionTimer(lambda: next(ticks))
    double = timer.wrap(lambda x: 2 * x)
    assert double(3) == 6 and double(4) == 8
    assert timer.pop()['cpu'] == pytest.approx(2.5)
    assert timer.pop() == dict(wall=0.0, cpu=0.0)


def test_term_overhead_refuses_the_cpu_clock_on_a_gpu():
    from term_overhead import main
    config = osp.join(REPO, 'configs', 'bench', 'det',
                      'feature_imitation_neck_digits_gfl_r18w32_r18w16.py')
    with pytest.raises(SystemExit):
        main([config, '--device', 'cuda', '--clock', 'cpu'])


def test_term_overhead_adversarial_step_updates_the_discriminator(
        tmp_path, capsys):
    """The distill step of an adversarial config is the distiller's
    train_step with the constructor's wrappers: the discriminator moves,
    and the result says so."""
    import torch
    from term_overhead import (build_models, load_config, main, make_steps,
                               synthetic_batch)
    config = osp.join(REPO, 'configs', 'bench', 'seg',
                      'pixel-pair-adversarial_logits-head_digits_fcn_'
                      'r18w32_r18w16-d8.py')
    cfg = load_config(config, str(tmp_path))
    distiller, student = build_models(cfg, torch.device('cpu'))
    inputs, samples = synthetic_batch(student, 2, 64, torch.device('cpu'))
    steps = make_steps(distiller, student, inputs, samples, False, cfg)
    assert distiller.adversarial_terms()
    params = dict(distiller.named_parameters())
    moving = {side: [n for n in params if ('discriminator' in n) == disc
                     and params[n].requires_grad]
              for side, disc in (('discriminator', True),
                                 ('student', False))}
    assert moving['discriminator'] and moving['student']
    before = {n: p.detach().clone() for n, p in params.items()}
    steps['distill']()
    for names in moving.values():  # both optimizers stepped
        assert any(not torch.equal(before[n], params[n]) for n in names)

    result = main([config, '--rounds', '1', '--warmup', '0', '--size', '64',
                   '--threads', '1', '--no-memory'])
    assert result['adversarial_train_step']
    assert result['clock_source'] == 'time.thread_time'
    assert math.isfinite(result['ratio']) and result['ratio'] > 0
    out = capsys.readouterr().out
    assert 'discriminator and student updates' in out
    assert 'cpu clock (time.thread_time)' in out


def test_term_overhead_times_the_teacher_roi_head_pass(capsys):
    """Terms on the student's RoIs run the teacher's box head inside the
    distill step: its time is reported as a share of that step."""
    from term_overhead import TEACHER_ROI, main
    config = osp.join(REPO, 'configs', 'bench', 'det',
                      'chen2017_neck-rpn-roi_digits_faster-rcnn_'
                      'r18w32_r18w16.py')
    result = main([config, '--rounds', '1', '--warmup', '0', '--size', '64',
                   '--threads', '1', '--no-memory', '--clock', 'wall'])
    assert result['clock'] == 'wall'
    roi = result['teacher_roi_head']
    distill = result['timings']['distill']
    assert distill['sections'][TEACHER_ROI]['median_s'] == roi['median_s']
    assert 0 < roi['median_s'] < distill['median_s']
    assert roi['share_of_distill'] == pytest.approx(
        roi['median_s'] / distill['median_s'])
    assert 0 < roi['ratio_with_it_as_teacher_read'] < result['ratio']
    assert TEACHER_ROI in capsys.readouterr().out


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
