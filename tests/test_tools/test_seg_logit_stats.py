"""tools/benchmark/seg_logit_stats.py: its pixel statistics by hand, and a
run on a tiny digits segmentation set with random weights."""
import math
import os.path as osp
import sys

import pytest
import torch
from conftest import REPO, save_teacher
from mmengine.config import Config
from mmengine.registry import DefaultScope

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))

import accuracy  # noqa: E402
import seg_logit_stats  # noqa: E402


def test_pixel_stats_by_hand():
    # three labelled pixels and one ignored, two classes; probabilities
    # (teacher): 0.95 / 0.05 right, 0.8 / 0.2 right, 0.3 / 0.7 wrong
    probs = torch.tensor([[0.95, 0.8, 0.3, 0.5]])
    teacher = torch.stack([probs.log(), (1 - probs).log()], 1)  # (1,2,4)
    teacher = teacher.reshape(1, 2, 1, 4)
    labels = torch.tensor([[[0, 0, 0, 255]]])
    student = torch.tensor([[[[1.0, -1.0, 1.0, 0.0]],
                             [[0.0, 0.0, 0.0, 0.0]]]])  # argmax 0, 1, 0
    stats = seg_logit_stats.pixel_stats(teacher, labels, [1.0, 10.0],
                                        student_logits=student)
    assert stats['pixels'] == 3
    assert stats['teacher_accuracy'] == pytest.approx(2 / 3)
    assert stats['teacher_max_prob'] == pytest.approx((0.95 + 0.8 + 0.7) / 3)
    entropy = [-(p * math.log(p) + (1 - p) * math.log(1 - p))
               for p in (0.95, 0.8, 0.3)]
    assert stats['teacher_entropy'] == pytest.approx(
        sum(entropy) / 3 / math.log(2), rel=1e-5)
    assert stats['teacher_confident'] == pytest.approx(1 / 3)
    assert stats['teacher_wrong_confident'] == 0.0
    # w = 1: (1 + 0.3) / 2 = 0.65 on the label, right; w = 10: (1 + 3) / 11
    # against 7 / 11, wrong on the third pixel
    assert stats['target_wrong_w1'] == 0.0
    assert stats['target_wrong_w10'] == pytest.approx(1 / 3)
    assert stats['student_accuracy'] == pytest.approx(2 / 3)
    assert stats['student_right_teacher_wrong'] == pytest.approx(1 / 3)


def test_score_map_stats_by_hand():
    # a 2x2 score map over 4x4 labels: cell (0, 0) says class 1, the other
    # three the background (0); the labels hold 4 object pixels, two in
    # the class-1 cell and two in background cells, and one void pixel
    teacher = torch.zeros(1, 2, 2, 2)
    teacher[0, 1, 0, 0] = 5.0
    teacher[0, 0, 0, 1] = teacher[0, 0, 1, 0] = teacher[0, 0, 1, 1] = 5.0
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = labels[0, 1, 1] = 1  # in cell (0, 0)
    labels[0, 0, 2] = 1  # in cell (0, 1)
    labels[0, 3, 3] = 2  # in cell (1, 1)
    labels[0, 2, 0] = 255
    stats = seg_logit_stats.score_map_stats(teacher, labels)
    assert stats['labelled_background'] == pytest.approx(11 / 15)
    assert stats['map_background'] == pytest.approx(3 / 4)
    assert stats['object_pixels_in_background_cells'] == pytest.approx(0.5)


def test_run_on_a_tiny_set_and_missing_inputs_are_named(tmp_path):
    data = accuracy.ensure_data('seg', str(tmp_path), 4, 2)
    ckpts = {}
    for role in ('teacher', 'student'):
        model = Config.fromfile(accuracy.SUITES['seg'][role]).model
        ckpts[role] = save_teacher(model.to_dict(),
                                   str(tmp_path / f'{role}.pth'), 'mmseg')
    out = tmp_path / 'stats.jsonl'
    try:
        result = seg_logit_stats.main([
            '--teacher-checkpoint', ckpts['teacher'], '--student-checkpoint',
            ckpts['student'], '--data', data, '--batches', '1',
            '--batch-size', '2', '--temperature', '4', '--out', str(out)])
    finally:
        DefaultScope._instance_dict.clear()  # the runners' scopes
    stats = result['stats']
    assert result['batches'] == 1 and result['temperature'] == 4.0
    assert 0.0 <= stats['teacher_accuracy'] <= 1.0
    assert 0.0 <= stats['teacher_entropy'] <= 1.0 + 1e-6
    assert stats['target_wrong_w1'] == 0.0  # the label keeps half
    assert 'student_right_teacher_wrong' in stats
    assert 0.0 <= stats['object_pixels_in_background_cells'] <= 1.0
    assert out.read_text().count('\n') == 1
    with pytest.raises(FileNotFoundError, match='no ann_dir'):
        seg_logit_stats.main(['--teacher-checkpoint', ckpts['teacher'],
                              '--data', str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='No checkpoint'):
        seg_logit_stats.main(['--teacher-checkpoint', '/nowhere.pth',
                              '--data', data])
