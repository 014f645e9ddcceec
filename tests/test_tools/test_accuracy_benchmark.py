"""tools/benchmark/accuracy.py end to end in quick mode (tiny data, two
iterations a run), and the pieces it is made of."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
from conftest import REPO, save_teacher
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))

import accuracy  # noqa: E402

ROW_KEYS = {'task', 'method', 'config', 'metric', 'seeds', 'student',
            'distilled', 'teacher', 's_per_iter'}


def test_quick_run_writes_the_json_rows_the_table_and_the_plots(tmp_path):
    out, work = tmp_path / 'docs', tmp_path / 'work'
    argv = ['--quick', '--methods',
            'fgfi,seg:pixel,seg:pixel+pair+adversarial', '--seeds', '0',
            '--out', str(out), '--work-dir', str(work)]
    accuracy.main(argv)
    rows = json.loads((out / 'benchmarks.json').read_text())
    assert [(r['task'], r['method'], r['metric']) for r in rows] == \
        [('det', 'fgfi', 'AP'), ('seg', 'pixel', 'mIoU'),
         ('seg', 'pixel+pair+adversarial', 'mIoU')]
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert row['seeds'] == [0]
        assert len(row['student']) == len(row['distilled']) == 1
        assert osp.isfile(osp.join(REPO, row['config']))
        assert row['s_per_iter'] > 0
    assert 0 <= rows[0]['teacher'] <= 1  # COCO AP
    assert 0 <= rows[1]['teacher'] <= 100  # mIoU in %
    table = (out / 'benchmarks.md').read_text()
    assert '| det | fgfi | AP |' in table and '| seg | pixel | mIoU |' in table
    assert '--quick' in table and 'cores' in table
    for png in ('benchmarks_gain.png', 'benchmarks_loss.png'):
        assert (out / png).read_bytes()[:4] == b'\x89PNG'
    # a second run trains nothing: every run comes from the cache
    runs = sorted(p.name for p in work.iterdir() if p.name[:4] in
                  ('det_', 'seg_'))
    # per task: teacher, student, distilled (two methods on seg)
    assert len(runs) == 7
    accuracy.main(argv)
    assert sorted(p.name for p in work.iterdir()
                  if p.name[:4] in ('det_', 'seg_')) == runs
    assert json.loads((out / 'benchmarks.json').read_text()) == rows
    DefaultScope._instance_dict.clear()  # the runners' scopes


def test_methods_are_selected_by_name_or_task_and_name():
    assert accuracy.select_methods('feature_imitation') == [
        ('det', 'feature_imitation'), ('seg', 'feature_imitation')]
    assert accuracy.select_methods('seg:feature_imitation,fgfi') == [
        ('seg', 'feature_imitation'), ('det', 'fgfi')]
    assert accuracy.select_methods(None) == list(accuracy.METHODS)
    with pytest.raises(ValueError, match='det:fgfi'):
        accuracy.select_methods('fgfi_typo')


def test_summary_statistics_and_gap_closed():
    mean, std = accuracy.summarize([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and std == pytest.approx(0.1)
    row = dict(student=[0.4, 0.5], distilled=[0.6, 0.55], teacher=0.75)
    # gain 0.125 of a gap 0.3
    assert accuracy.gap_closed(row) == pytest.approx(0.125 / 0.3)


def test_adversarial_methods_train_with_two_optimizers():
    """The harness's optimizer becomes the student's entry of the
    adversarial constructor; other methods keep it as it is."""
    harness = dict(optimizer=dict(type='AdamW', lr=2e-3))
    plain = osp.join(accuracy.BENCH, accuracy.METHODS[('seg', 'pixel')])
    assert accuracy.method_optim_wrapper(plain, harness) == harness
    adversarial = osp.join(accuracy.BENCH, accuracy.METHODS[
        ('seg', 'pixel+pair+adversarial')])
    wrapper = accuracy.method_optim_wrapper(adversarial, harness)
    assert wrapper['constructor'] == \
        'mmkd.AdversarialOptimWrapperConstructor'
    assert wrapper['student'] == harness
    assert wrapper['discriminator']['optimizer']['type'] == 'Adam'


def test_region_labels_cover_each_digit_as_one_solid_shape():
    from digits_seg import digit_region
    ink = np.zeros((24, 24))
    ink[4:20, 6:8] = ink[4:20, 14:16] = 1  # two strokes 6 px apart
    region = digit_region(ink)
    assert region[ink > 0.5].all()  # every ink pixel is in the region
    assert region[12, 6:16].all()  # the gap between strokes is filled
    assert not region[0, 0] and not region[23, 23]  # corners stay free


def test_segmentation_labels_mark_the_region_of_each_digit(tmp_path):
    from digits_seg import CLASSES, generate
    assert len(CLASSES) == 11 and CLASSES[0] == 'background'
    import cv2
    generate(str(tmp_path), num_train=4, num_val=2, seed=3)
    for split, count in (('train', 4), ('val', 2)):
        labels = sorted((tmp_path / 'ann_dir' / split).iterdir())
        assert len(labels) == count
        for path in labels:
            label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            image = cv2.imread(str(tmp_path / 'img_dir' / split /
                                   path.name))
            assert label.shape == (128, 128) and label.dtype == np.uint8
            assert image.shape == (128, 128, 3)
            assert label.max() <= 10 and (label > 0).any()
            assert (label == 0).mean() > 0.5  # mostly background


def test_detection_base_configs_are_the_demo_models():
    from digits_kd_demo import gfl_model
    for path, args in (('digits_gfl_r18w16.py', (16, 32)),
                       ('digits_gfl_r18w32.py', (32, 64))):
        cfg = Config.fromfile(osp.join(accuracy.BENCH, '_base_', path))
        expected = json.loads(json.dumps(gfl_model(*args)))
        assert json.loads(json.dumps(cfg.model.to_dict())) == expected


@pytest.mark.parametrize('key', list(accuracy.METHODS))
def test_bench_configs_build_with_a_random_teacher(key, tmp_path):
    suite, _ = key
    teacher_cfg = Config.fromfile(accuracy.SUITES[suite]['teacher'])
    scope = teacher_cfg.default_scope
    ckpt = save_teacher(teacher_cfg.model.to_dict(),
                        str(tmp_path / 't.pth'), scope)
    model_cfg = accuracy.distill_model(
        osp.join(accuracy.BENCH, accuracy.METHODS[key]), ckpt)
    if 'teacher_ckpt' in model_cfg:  # a peer's own model (mmdet's LD)
        assert model_cfg['teacher_ckpt'] == ckpt
        with DefaultScope.overwrite_default_scope(scope):
            MODELS.build(model_cfg)
        return
    # the distilled student is the suite's student base config, unchanged
    student_cfg = Config.fromfile(accuracy.SUITES[suite]['student'])
    assert json.dumps(model_cfg['student'], sort_keys=True) == \
        json.dumps(student_cfg.model.to_dict(), sort_keys=True)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    assert type(model).__name__ == 'Distiller'
    assert model.teacher is not None
