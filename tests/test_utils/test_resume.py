"""Resuming refuses an unreadable checkpoint by name and points to the
newest earlier one that loads."""
import os

import pytest
import torch

from mmkd.utils.resume import (check_resume_checkpoint,
                               checkpoints_newest_first, latest_checkpoint)


def _save(path, value=1.0):
    torch.save(dict(state_dict=dict(w=torch.tensor([value]))), path)
    return str(path)


def test_checkpoints_are_ordered_by_number_not_name(tmp_path):
    for n in (2, 10, 1):
        _save(tmp_path / f'iter_{n}.pth')
    (tmp_path / 'best_coco.pth').write_bytes(b'x')
    names = [os.path.basename(p) for p in checkpoints_newest_first(
        str(tmp_path))]
    assert names == ['iter_10.pth', 'iter_2.pth', 'iter_1.pth']


def test_a_good_checkpoint_passes(tmp_path):
    check_resume_checkpoint(_save(tmp_path / 'iter_1.pth'), 'given')


def test_truncated_checkpoint_names_itself_and_previous_good(tmp_path):
    _save(tmp_path / 'iter_4.pth')
    _save(tmp_path / 'iter_8.pth')
    bad = tmp_path / 'iter_12.pth'
    _save(bad)
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    (tmp_path / 'last_checkpoint').write_text(str(bad))
    assert latest_checkpoint(str(tmp_path)) == str(bad)
    with pytest.raises(SystemExit) as info:
        check_resume_checkpoint(str(bad), 'the latest')
    message = str(info.value)
    assert f'Cannot resume from {bad} (the latest)' in message
    assert f'--resume {tmp_path / "iter_8.pth"}' in message
    assert bad.read_bytes() == data[:len(data) // 2]  # left as it was


def test_no_good_checkpoint_says_so(tmp_path):
    bad = tmp_path / 'epoch_1.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(SystemExit, match='No earlier checkpoint'):
        check_resume_checkpoint(str(bad), 'given')


def test_missing_latest_is_named(tmp_path):
    good = _save(tmp_path / 'iter_1.pth')
    with pytest.raises(SystemExit, match='does not exist.*--resume ' + good):
        check_resume_checkpoint(str(tmp_path / 'iter_2.pth'), 'the latest')


def test_no_record_means_nothing_to_check(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
