"""tools/benchmark/record_losses.py: the thirds of a run record's loss
curves, by hand."""
import json
import os.path as osp
import sys

import pytest
from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))
import record_losses  # noqa: E402


def test_thirds_by_hand_the_last_takes_the_remainder():
    assert record_losses.thirds([1, 2, 3, 4, 5, 6, 7]) == \
        [1.5, 3.5, 6.0]
    with pytest.raises(ValueError, match='2 logged values'):
        record_losses.thirds([1.0, 2.0])


def test_main_reads_records_and_names_one_without_curves(tmp_path, capsys):
    path = tmp_path / 'seg_adversarial_seed0_abc.json'
    path.write_text(json.dumps(dict(
        name='adversarial_seed0', iters=6, mIoU=80.0,
        losses=dict(loss_discriminator_holistic=[0.3, 0.1, 0.0, 0.0,
                                                 0.002, 0.0]))))
    result = record_losses.main([str(path)])
    assert result[path.name]['loss_discriminator_holistic'] == \
        pytest.approx([0.2, 0.0, 0.001])
    assert 'adversarial_seed0 (6 it, 80.0)' in capsys.readouterr().out
    bare = tmp_path / 'old.json'
    bare.write_text(json.dumps(dict(name='old', iters=600)))
    with pytest.raises(ValueError, match="'old' holds no loss curves"):
        record_losses.main([str(bare)])
