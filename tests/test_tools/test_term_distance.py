"""tools/benchmark/term_distance.py: a term's distance for plain and
distiller checkpoints of the same student, on a tiny digits set."""
import os.path as osp
import sys

import pytest
import torch
from conftest import REPO, save_teacher
from mmengine.config import Config

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))
import accuracy  # noqa: E402
import term_distance  # noqa: E402

PAIR = osp.join(REPO, 'configs', 'bench', 'seg',
                'pair_head_digits_fcn_r18w32_r18w16-d8.py')


def test_plain_and_distiller_checkpoints_give_the_same_distance(tmp_path):
    data = accuracy.ensure_data('seg', str(tmp_path), 4, 2)
    teacher = save_teacher(
        Config.fromfile(accuracy.SUITES['seg']['teacher']).model.to_dict(),
        str(tmp_path / 'teacher.pth'), 'mmseg')
    plain = save_teacher(
        Config.fromfile(accuracy.SUITES['seg']['student']).model.to_dict(),
        str(tmp_path / 'student.pth'), 'mmseg')
    # the same weights as a distiller saves them, beside its teacher's
    state = torch.load(plain, weights_only=False)['state_dict']
    wrapped = {f'student.{k}': v for k, v in state.items()}
    wrapped['teacher.backbone.stem.0.weight'] = torch.zeros(1)
    distilled = str(tmp_path / 'distiller.pth')
    torch.save(dict(state_dict=wrapped, meta={}), distilled)
    assert term_distance.student_prefix(dict(state_dict=wrapped)) == \
        'student.'
    assert term_distance.student_prefix(dict(state_dict=state)) is None
    out = tmp_path / 'distance.jsonl'
    result = term_distance.main([
        '--config', PAIR, '--teacher-checkpoint', teacher,
        '--student', plain, '--student', distilled, '--student', 'init',
        '--data', data, '--batches', '1', '--batch-size', '2',
        '--out', str(out)])
    by_student = result['students']
    assert by_student[plain] == by_student[distilled]
    assert by_student[plain]['loss_distill_pair'] > 0.0
    assert 'decode.loss_ce' in by_student['init']
    assert out.read_text().count('\n') == 1


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='No checkpoint'):
        term_distance.main(['--config', PAIR, '--teacher-checkpoint',
                            '/nowhere.pth', '--student', 'init',
                            '--data', str(tmp_path)])
    teacher = tmp_path / 'teacher.pth'
    teacher.write_bytes(b'')
    with pytest.raises(FileNotFoundError, match='No data folder'):
        term_distance.main(['--config', PAIR, '--teacher-checkpoint',
                            str(teacher), '--student', 'init',
                            '--data', str(tmp_path / 'nodata')])
