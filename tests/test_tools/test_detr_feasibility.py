"""tools/benchmark/detr_feasibility.py on a tiny digits set: it trains the
digits DAB-DETR and appends one record with its AP curve."""
import json
import os.path as osp
import sys

from conftest import REPO
from mmengine.registry import DefaultScope

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))

import detr_feasibility  # noqa: E402


def test_feasibility_run_appends_a_record_with_its_ap_curve(tmp_path,
                                                          monkeypatch):
    out = tmp_path / 'records.jsonl'
    argv = ['--model', 'student', '--iters', '4', '--eval-every', '2',
            '--batch-size', '2', '--num-train', '4', '--num-val', '2',
            '--work-dir', str(tmp_path / 'work'), '--out', str(out)]
    record = detr_feasibility.main(argv)
    # the same run again is read from its record, not trained
    with monkeypatch.context() as patch:
        patch.setattr(detr_feasibility.Runner, 'from_cfg', None)
        assert detr_feasibility.main(argv) == record
    detr_feasibility.main(argv + ['--force'])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]['config_hash'] == \
        lines[1]['config_hash'] == record['config_hash']
    # evaluated at iterations 2 and 4; the last point is the record's AP
    assert [point[0] for point in record['curve']] == [2, 4]
    assert record['AP'] == record['curve'][-1][1]
    assert 0.0 <= record['AP'] <= 1.0
    assert record['model'] == 'configs/bench/_base_/digits_dab-detr_r18w16.py'
    assert record['cpu_seconds'] > 0 and record['iters'] == 4
    DefaultScope._instance_dict.clear()  # the runner's scope


def test_the_digits_dino_trains_and_is_recorded_under_its_config(tmp_path):
    out = tmp_path / 'records.jsonl'
    record = detr_feasibility.main([
        '--model', 'dino-student', '--iters', '2', '--batch-size', '2',
        '--num-train', '4', '--num-val', '2',
        '--work-dir', str(tmp_path / 'work'), '--out', str(out)])
    assert record['model'] == 'configs/bench/_base_/digits_dino_r18w16.py'
    assert 0.0 <= record['AP'] <= 1.0 and record['iters'] == 2
    assert osp.isdir(tmp_path / 'work' /
                     f'digits_dino_r18w16_{record["config_hash"]}')
    DefaultScope._instance_dict.clear()  # the runner's scope
