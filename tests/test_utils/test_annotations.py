"""A corrupt annotation file is named instead of a bare JSONDecodeError."""
import json

import pytest

from mmkd.utils.annotations import annotation_errors_named, annotation_files


def _config(root):
    return dict(
        train_dataloader=dict(dataset=dict(
            data_root=str(root), ann_file='train.json')),
        val_dataloader=dict(dataset=dict(
            type='ConcatDataset', datasets=[
                dict(data_root=str(root / 'b'), ann_file='val.json')])),
        val_evaluator=dict(ann_file=str(root / 'abs.json')),
        test_evaluator=[dict(ann_file='labels.txt')])


def test_annotation_files_resolved_against_their_data_root(tmp_path):
    assert annotation_files(_config(tmp_path)) == [
        str(tmp_path / 'train.json'), str(tmp_path / 'b' / 'val.json'),
        str(tmp_path / 'abs.json')]


def test_json_error_names_the_corrupt_file(tmp_path):
    (tmp_path / 'train.json').write_text('{"images": [')
    (tmp_path / 'abs.json').write_text('{}')
    with pytest.raises(SystemExit) as info:
        with annotation_errors_named(_config(tmp_path)):
            json.loads('{"images": [')
    message = str(info.value)
    assert str(tmp_path / 'train.json') in message
    assert 'abs.json' not in message  # valid files are not blamed


def test_unrelated_json_error_is_left_alone(tmp_path):
    (tmp_path / 'train.json').write_text('{}')
    with pytest.raises(json.JSONDecodeError):
        with annotation_errors_named(_config(tmp_path)):
            json.loads('[')
