import argparse
"""tools/benchmark/accuracy.py end to end in quick mode (tiny data, two
iterations a run), and the pieces it is made of."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
from conftest import REPO, save_teacher
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS, DefaultScope

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))

import accuracy  # noqa: E402

ROW_KEYS = {'task', 'suite', 'method', 'config', 'metric', 'seeds',
            'student', 'distilled', 'teacher', 's_per_iter'}


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


def test_run_records_let_another_work_dir_skip_the_finished_runs(tmp_path):
    """A benchmark interrupted on one machine resumes on another: each
    run's small record (no checkpoint) lands in --records, and a run with
    a fresh --work-dir trains nothing that is recorded; the teacher is
    trained again only for a distilled run left to train, which reads its
    checkpoint."""
    records = tmp_path / 'records'

    def run(work: str, seeds: str = '0') -> list:
        return accuracy.main([
            '--quick', '--methods', 'det:fgfi', '--seeds', seeds, '--out',
            str(tmp_path / 'docs'), '--work-dir', str(tmp_path / work),
            '--records', str(records)])

    first = run('first')
    names = sorted(p.name for p in records.iterdir())
    assert [n.rsplit('_', 1)[0] for n in names] == [
        'det_fgfi_seed0', 'det_student_seed0', 'det_teacher']
    record = json.loads((records / names[0]).read_text())
    assert 'checkpoint' not in record
    assert record['seed'] == 0 and record['iters'] == 2
    assert names[0] == f'det_fgfi_seed0_{record["config_hash"]}.json'
    assert record['cpu_seconds'] > 0 and 'loss' in record['losses']
    second = run('second')
    assert [r['distilled'] for r in second] == [r['distilled']
                                                for r in first]
    assert [r['student'] for r in second] == [r['student'] for r in first]
    def trained(work: str) -> list:
        return sorted(p.name.rsplit('_', 1)[0]
                      for p in (tmp_path / work).iterdir()
                      if p.name.startswith('det_'))

    assert trained('second') == []
    third = run('third', seeds='0,1')
    assert trained('third') == ['det_fgfi_seed1', 'det_student_seed1',
                                'det_teacher']
    assert third[0]['distilled'][0] == first[0]['distilled'][0]
    DefaultScope._instance_dict.clear()  # the runners' scopes


def test_a_run_recorded_under_another_name_is_found_by_its_config_hash(
        tmp_path):
    """A student alone recorded as a compute-matched row
    (``student_6000it_seed0``) is the same run as a suite's student at
    6000 iterations (``student_seed0``): the lookup falls back to any
    record of the task with the same config hash, and a run recorded
    nowhere gets the path under its own name."""
    records = tmp_path / 'records'
    records.mkdir()
    other = records / 'seg_student_6000it_seed0_0123456789.json'
    other.write_text('{}')
    (records / 'det_student_seed0_abcdef0123.json').write_text('{}')
    assert accuracy.recorded_run(str(records), 'seg', 'student_seed0',
                                 '0123456789') == str(other)
    assert accuracy.recorded_run(str(records), 'seg', 'student_seed0',
                                 'abcdef0123') == str(
        records / 'seg_student_seed0_abcdef0123.json')
    own = records / 'seg_student_seed0_0123456789.json'
    own.write_text('{}')
    assert accuracy.recorded_run(str(records), 'seg', 'student_seed0',
                                 '0123456789') == str(own)


def test_a_record_keeps_the_shape_of_a_long_loss_curve_at_a_small_size():
    values = [float(i) for i in range(1000)]
    points = accuracy.downsample(values, 200)
    assert len(points) == 200
    assert points[0] == 2.0 and points[-1] == 997.0  # means of 5
    assert accuracy.downsample([1.0, 2.0], 200) == [1.0, 2.0]


def test_methods_are_selected_by_name_or_suite_and_name():
    # a bare name: every suite with that method, in manifest order
    assert accuracy.select_methods('feature_imitation') == [
        key for key in accuracy.METHODS if key[1] == 'feature_imitation']
    assert {s for s, _ in accuracy.select_methods('feature_imitation')} \
        >= {'det', 'seg'}
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
    plain = accuracy.method_config(('seg', 'pixel'))
    assert accuracy.method_optim_wrapper(plain, harness) == harness
    adversarial = accuracy.method_config(('seg', 'pixel+pair+adversarial'))
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


# MMRazor's own algorithms: built by test_mmrazor_rows_* below, where
# MMRazor imports (and their skipping tested where it does not)
MMRAZOR_ROWS = {('det', 'mmrazor_cwd'): ('det', 'cwd'),
                ('det', 'mmrazor_pkd'): ('det', 'pkd'),
                ('det', 'mmrazor_fpn_imitation'): ('det', 'feature_imitation')}


@pytest.mark.parametrize(
    'key', [k for k in accuracy.METHODS if k not in MMRAZOR_ROWS],
    ids=':'.join)
def test_bench_configs_build_with_a_random_teacher(key, tmp_path):
    suite, _ = key
    path = accuracy.method_config(key)
    slots = accuracy.external_teachers(path)
    scope = Config.fromfile(accuracy.SUITES[suite]['teacher']).default_scope

    def random_teacher(teacher_suite: str) -> str:
        # ConfigDicts, as the Runner gives them (two-stage detectors read
        # train_cfg.rpn as an attribute); a born-again row's teacher is
        # the previous generation, the student's own architecture
        role = 'student' if accuracy.generation(key) else 'teacher'
        teacher_cfg = Config.fromfile(accuracy.SUITES[teacher_suite][role])
        return save_teacher(teacher_cfg.model,
                            str(tmp_path / f'{teacher_suite}.pth'), scope)

    if slots is not None:  # named teachers, each its suite's; or an EMA
        suites = accuracy.teacher_suites(key)
        ckpts = {name: random_teacher(suites[name]) for name in slots}
        model_cfg = ConfigDict(accuracy.distill_model(path, teachers=ckpts))
        for name, ckpt in ckpts.items():
            assert model_cfg['teachers'][name]['checkpoint'] == ckpt
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(model_cfg)
        assert type(model).__name__ == 'Distiller'
        return
    ckpt = random_teacher(suite)
    model_cfg = ConfigDict(accuracy.distill_model(path, ckpt))
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


def test_mmrazor_rows_are_the_manifest_peer_rows_with_our_settings():
    """Each MMRazor row: the suite's student and teacher, one 1x1 linear
    connector and one loss per FPN level, our row's weight and tau."""
    assert {k for k in accuracy.METHODS if 'mmrazor' in k[1]} == \
        set(MMRAZOR_ROWS)
    student = Config.fromfile(accuracy.SUITES['det']['student']).model
    teacher = Config.fromfile(accuracy.SUITES['det']['teacher']).model
    for key, ours_key in MMRAZOR_ROWS.items():
        peer = Config.fromfile(accuracy.method_config(key),
                               import_custom_modules=False)
        ours = Config.fromfile(accuracy.method_config(ours_key),
                               import_custom_modules=False).model.distill.fpn
        assert peer.custom_imports.imports == ['mmrazor.models']
        model = peer.model.to_dict()
        assert (model['_scope_'], model['type']) == \
            ('mmrazor', 'FpnTeacherDistill')
        assert model['architecture'].pop('_scope_') == 'mmdet'
        assert model['teacher'].pop('_scope_') == 'mmdet'
        assert model['architecture'] == student.to_dict()
        assert model['teacher'] == teacher.to_dict()
        distiller = model['distiller']
        for recorders in ('student_recorders', 'teacher_recorders'):
            assert distiller[recorders] == dict(
                fpn=dict(type='ModuleOutputs', source='neck'))
        assert list(distiller['connectors'].values()) == [dict(
            type='ConvModuleConnector', in_channel=32, out_channel=64,
            act_cfg=None)] * 3
        losses = list(distiller['distill_losses'].values())
        assert len(losses) == 3 and all(loss == losses[0] for loss in losses)
        assert losses[0]['loss_weight'] == ours.loss_weight
        if ours.type == 'ChannelWiseKD':
            assert losses[0]['tau'] == ours.temperature
        if ours.type == 'FeatureImitation':  # element mean, as 'mean'
            assert (losses[0]['normalize'], losses[0]['div_element']) == \
                (False, True)
            assert ours.get('normalize', 'mean') == 'mean'
        levels = [[(r['data_idx'], r.get('connector')) for r in m.values()]
                  for m in distiller['loss_forward_mappings'].values()]
        assert sorted(levels) == [[(i, f's_fpn{i}'), (i, None)]
                                  for i in range(3)]


def _hide_mmrazor(monkeypatch):
    """Make ``import mmrazor...`` fail for the rest of the test."""
    for name in [m for m in sys.modules if m.split('.')[0] == 'mmrazor']:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, 'mmrazor', None)


@pytest.mark.parametrize('key', list(MMRAZOR_ROWS))
def test_mmrazor_rows_compute_our_losses_or_are_skipped(key, tmp_path,
                                                        monkeypatch):
    """Where MMRazor imports (../shared/peers), its model and ours, given
    the same weights and batch, give the same task and distill losses (PKD:
    ours x (1 - 1/(N*H*W)) per level, MMRazor's sample std); where it does
    not (a clean clone), the harness names it as the reason to skip."""
    monkeypatch.setattr(sys, 'path', list(sys.path))
    path = accuracy.method_config(key)
    reason = accuracy.peer_import_error(path, accuracy.PEERS_PATH)
    if reason is not None:  # the path a clean clone takes
        assert not osp.isdir(osp.join(accuracy.PEERS_PATH, 'mmrazor'))
        assert 'mmrazor.models is not importable' in reason
        assert '--peers-path' in reason
        return
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmkd.losses.pearson import pearson_feature_loss
    teacher_cfg = Config.fromfile(accuracy.SUITES['det']['teacher'])
    ckpt = save_teacher(teacher_cfg.model.to_dict(),
                        str(tmp_path / 't.pth'), 'mmdet')
    with DefaultScope.overwrite_default_scope('mmdet'):
        ours = MODELS.build(accuracy.distill_model(
            accuracy.method_config(MMRAZOR_ROWS[key]), ckpt))
        peer = MODELS.build(accuracy.distill_model(path, ckpt))
    assert type(peer).__name__ == 'FpnTeacherDistill'
    assert not any(p.requires_grad for p in peer.teacher.parameters())
    for a, b in zip(ours.teacher.state_dict().values(),
                    peer.teacher.state_dict().values()):
        assert torch.equal(a, b)  # the checkpoint the harness filled in
    peer.architecture.load_state_dict(ours.student.state_dict())
    adaptors = ours.distill_terms.fpn.adaptors
    for i, adaptor in enumerate(adaptors):
        peer.distiller.connectors[f's_fpn{i}'].conv_module.conv \
            .load_state_dict(adaptor.conv.conv.state_dict())
    torch.manual_seed(1)
    inputs = torch.randn(2, 3, 128, 128)
    samples = []
    for _ in range(2):
        sample = DetDataSample(metainfo=dict(
            img_shape=(128, 128), pad_shape=(128, 128),
            batch_input_shape=(128, 128)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 20., 50., 70.],
                                 [60., 60., 100., 110.]]),
            labels=torch.tensor([1, 7]))
        samples.append(sample)
    ours.train()
    peer.train()
    with torch.no_grad():
        ours_losses = ours.loss(inputs, samples)
        peer_losses = peer.loss(inputs, samples)
    for name in ('loss_cls', 'loss_bbox', 'loss_dfl'):
        assert float(sum(peer_losses[f'student.{name}'])) == \
            pytest.approx(float(sum(ours_losses[name])), rel=1e-5)
    peer_levels = [v for k, v in peer_losses.items()
                   if k.startswith('distill.')]
    assert len(peer_levels) == 3
    if key[1] != 'mmrazor_pkd':
        assert float(sum(peer_levels)) == pytest.approx(
            float(ours_losses['loss_distill_fpn']), rel=1e-5)
        return
    with torch.no_grad():
        s_levels = ours.student.extract_feat(inputs)
        t_levels = ours.teacher.extract_feat(inputs)
        ours_levels = [10 * pearson_feature_loss(adaptor(s), t) for
                       adaptor, s, t in zip(adaptors, s_levels, t_levels)]
    assert float(sum(ours_levels)) == pytest.approx(
        float(ours_losses['loss_distill_fpn']), rel=1e-5)
    for p, o, t in zip(peer_levels, ours_levels, t_levels):
        n = t.numel() // t.shape[1]  # N*H*W: 512, 128, 32
        assert float(p) == pytest.approx(float(o) * (1 - 1 / n), rel=1e-4)


def test_peer_rows_are_skipped_when_mmrazor_does_not_import(
        tmp_path, monkeypatch, capsys, runner_state_restored):
    """With MMRazor unimportable, its rows are skipped with the reason
    (console and table) and the other rows still run."""
    monkeypatch.setattr(sys, 'path', list(sys.path))
    _hide_mmrazor(monkeypatch)
    out = tmp_path / 'docs'
    rows = accuracy.main([
        '--quick', '--methods', 'det:feature_imitation,det:mmrazor_cwd',
        '--seeds', '0', '--out', str(out), '--work-dir',
        str(tmp_path / 'work'), '--peers-path', str(tmp_path / 'absent')])
    assert [(r['suite'], r['method']) for r in rows] == \
        [('det', 'feature_imitation')]
    assert json.loads((out / 'benchmarks.json').read_text()) == rows
    table = (out / 'benchmarks.md').read_text()
    assert '| det | feature_imitation | AP |' in table
    assert '| det | mmrazor_cwd |' not in table
    assert '**Skipped**: det:mmrazor_cwd: mmrazor.models is not ' \
        'importable' in table
    assert str(tmp_path / 'absent') in table
    assert 'not run yet' not in table
    assert '[det] mmrazor_cwd: skipped, mmrazor.models is not importable' \
        in capsys.readouterr().out
    # only the skipped rows chosen: a table naming them, no plot
    accuracy.main(['--quick', '--methods', 'det:mmrazor_pkd', '--seeds',
                   '0', '--out', str(tmp_path / 'none'), '--work-dir',
                   str(tmp_path / 'work'), '--peers-path',
                   str(tmp_path / 'absent')])
    assert '**Skipped**: det:mmrazor_pkd' in \
        (tmp_path / 'none' / 'benchmarks.md').read_text()
    assert json.loads(
        (tmp_path / 'none' / 'benchmarks.json').read_text()) == []


# Models with roles: rows with named teachers (each a suite's teacher), a
# teacher trained at twice the input size and an EMA teacher of the student
ROLE_ROWS = {('det_atss', 'pkd'), ('det', 'pkd_ensemble_gfl_atss'),
             ('det', 'pkd_progressive_atss_gfl'), ('det_2x', 'pkd'),
             ('det', 'pkd_ema')}


def test_quick_run_of_multi_teacher_2x_and_ema_rows(tmp_path,
                                                    runner_state_restored):
    """Each named teacher is its suite's trained teacher; an EMA row has
    none ('-' in the table, no gap closed); the 2x suite's teacher trains
    on its own run; everything is cached on a second run."""
    out, work = tmp_path / 'docs', tmp_path / 'work'
    argv = ['--quick', '--methods',
            'det:pkd_ensemble_gfl_atss,det:pkd_ema,det_2x:pkd', '--seeds',
            '0', '--out', str(out), '--work-dir', str(work)]
    rows = accuracy.main(argv)
    assert [(r['suite'], r['method']) for r in rows] == [
        ('det', 'pkd_ensemble_gfl_atss'), ('det', 'pkd_ema'),
        ('det_2x', 'pkd')]
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert len(row['student']) == len(row['distilled']) == 1
        assert row['s_per_iter'] > 0
    ensemble, ema, hires = rows
    assert list(ensemble['teachers']) == ['gfl', 'atss']
    assert [t['suite'] for t in ensemble['teachers'].values()] == \
        ['det', 'det_atss']
    assert ensemble['teacher'] == max(t['AP'] for t in
                                      ensemble['teachers'].values())
    assert ema['teachers'] == {} and ema['teacher'] is None
    assert ema['secondary']['teacher'] is None
    assert list(hires['teachers']) == ['gfl2x']
    assert hires['teachers']['gfl2x']['suite'] == 'det_2x'
    # the runs: three teachers (det, det_atss, det_2x: one config each),
    # one student shared by the suites, three distilled
    runs = sorted(p.name for p in work.iterdir() if p.name[:4] == 'det_')
    assert sum(name.startswith('det_teacher_') for name in runs) == 3
    assert sum(name.startswith('det_student_seed0_') for name in runs) == 1
    assert len(runs) == 7
    table = (out / 'benchmarks.md').read_text()
    gfl, atss = (ensemble['teachers'][n]['AP'] for n in ('gfl', 'atss'))
    assert (f'| det | pkd_ensemble_gfl_atss | AP | gfl {gfl:.3f}, '
            f'atss {atss:.3f} |') in table
    assert '| det | pkd_ema | AP | - |' in table
    ema_line = next(line for line in table.splitlines()
                    if '| pkd_ema |' in line)
    assert ema_line.split(' | ')[7] == '-'  # gap closed
    assert 'digits_atss_r18w32.py' in table  # a suite named by a slot
    assert 'at 2× the input size' in table
    assert json.loads((out / 'benchmarks.json').read_text()) == rows
    accuracy.main(argv)
    assert sorted(p.name for p in work.iterdir()
                  if p.name[:4] == 'det_') == runs


def test_prepare_only_trains_the_teachers_and_students_alone(
        tmp_path, capsys, runner_state_restored):
    """--prepare-only: the teachers (each slot's suite) and the students
    alone, no distilled run and no outputs; the EMA row needs no
    teacher."""
    out, work = tmp_path / 'docs', tmp_path / 'work'
    assert accuracy.main([
        '--quick', '--prepare-only', '--methods',
        'det:pkd_ema,det:pkd_progressive_atss_gfl', '--seeds', '0,1',
        '--out', str(out), '--work-dir', str(work)]) == []
    runs = sorted(p.name.rsplit('_', 1)[0] for p in work.iterdir()
                  if p.name[:4] == 'det_')
    assert runs == ['det_student_seed0', 'det_student_seed1',
                    'det_teacher', 'det_teacher']
    assert not (out / 'benchmarks.json').exists()
    printed = capsys.readouterr().out
    assert 'suite det: teacher AP' in printed
    assert 'suite det_atss: teacher AP' in printed


def test_role_rows_map_every_named_teacher_to_a_suite_of_their_task():
    assert ROLE_ROWS <= set(accuracy.METHODS)
    for key in accuracy.METHODS:
        path = accuracy.method_config(key)
        assert osp.isfile(path), path
        slots = accuracy.external_teachers(path)
        suites = accuracy.teacher_suites(key)
        if slots is None:  # one teacher, the row's suite's
            assert suites == {}
            continue
        assert set(suites) == set(slots), key
        for suite in suites.values():
            assert accuracy.SUITES[suite]['task'] == \
                accuracy.SUITES[key[0]]['task']
    assert accuracy.external_teachers(
        accuracy.method_config(('det', 'pkd_ema'))) == []
    assert accuracy.teacher_suites(('det', 'pkd_ensemble_gfl_atss')) == \
        dict(gfl='det', atss='det_atss')


def test_role_rows_are_the_det_pkd_row_but_for_their_teachers():
    """Every new row: the det row 'pkd' (PearsonFeatureKD at the neck,
    ConvAdaptor, weight 10, the det student), with its teachers."""
    pkd = Config.fromfile(accuracy.method_config(('det', 'pkd')),
                          import_custom_modules=False).model
    term = pkd.distill.fpn.to_dict()
    schedules = {}
    for key in ROLE_ROWS:
        model = Config.fromfile(accuracy.method_config(key),
                                import_custom_modules=False).model
        assert model.student.to_dict() == pkd.student.to_dict()
        assert model.probe_size == pkd.probe_size
        (name, row_term), = model.distill.to_dict().items()
        schedules[key] = row_term.pop('teacher_model', None)
        assert row_term == term, key
    assert schedules[('det_atss', 'pkd')] is None  # teacher=, one teacher
    assert schedules[('det', 'pkd_ensemble_gfl_atss')] == ('gfl', 'atss')
    assert schedules[('det', 'pkd_progressive_atss_gfl')] == dict(
        schedule=[(0, 'atss'), (300, 'gfl')], by='iter')
    assert schedules[('det_2x', 'pkd')] == 'gfl2x'
    assert schedules[('det', 'pkd_ema')] == 'mean'
    atss = Config.fromfile(accuracy.method_config(('det_atss', 'pkd')),
                           import_custom_modules=False).model.teacher
    assert osp.normpath(atss.config) == \
        accuracy.SUITES['det_atss']['teacher']
    hires = Config.fromfile(accuracy.method_config(('det_2x', 'pkd')),
                            import_custom_modules=False).model.teachers
    assert hires.gfl2x.inputs == dict(scale=2.0)
    assert osp.normpath(hires.gfl2x.config) == \
        accuracy.SUITES['det_2x']['teacher']
    ema = Config.fromfile(accuracy.method_config(('det', 'pkd_ema')),
                          import_custom_modules=False).model.teachers
    assert ema.to_dict() == dict(mean=dict(role='ema', decay=0.999))


def test_named_teachers_are_filled_from_the_suites_checkpoints():
    path = accuracy.method_config(('det', 'pkd_ensemble_gfl_atss'))
    model = accuracy.distill_model(path, teachers=dict(gfl='g.pth',
                                                       atss='a.pth'))
    assert model['teachers']['gfl']['checkpoint'] == 'g.pth'
    assert model['teachers']['atss']['checkpoint'] == 'a.pth'
    with pytest.raises(ValueError, match=r"\['atss', 'gfl'\].*\['gfl'\]"):
        accuracy.distill_model(path, teachers=dict(gfl='g.pth'))
    ema = accuracy.distill_model(
        accuracy.method_config(('det', 'pkd_ema')))
    assert ema['teachers'] == dict(mean=dict(role='ema', decay=0.999))


def test_2x_suite_resizes_the_teachers_train_and_val_images_only():
    def resizes(cfg):
        return [[step['scale'] for step in loader.dataset.pipeline
                 if step['type'] == 'Resize']
                for loader in (cfg.train_dataloader, cfg.val_dataloader)]

    assert accuracy.SUITES['det_2x']['teacher'] == \
        accuracy.SUITES['det']['teacher']
    assert accuracy.SUITES['det_2x']['student'] == \
        accuracy.SUITES['det']['student']
    cfg = accuracy.task_runner_config('det', {}, 'data', 8, 0, 2, 0)
    before = accuracy.config_hash(cfg)
    scaled = accuracy.scale_inputs(
        accuracy.task_runner_config('det', {}, 'data', 8, 0, 2, 0), 2)
    assert resizes(cfg) == [[(128, 128)], [(128, 128)]]
    assert resizes(scaled) == [[(256, 256)], [(256, 256)]]
    assert accuracy.config_hash(cfg) == before
    assert accuracy.config_hash(scaled) != before


def test_atss_teacher_has_the_gfl_students_priors_and_teachers_widths():
    import torch
    with DefaultScope.overwrite_default_scope('mmdet'):
        atss, gfl_teacher, student = (MODELS.build(Config.fromfile(
            accuracy.SUITES[suite][role]).model) for suite, role in (
                ('det_atss', 'teacher'), ('det', 'teacher'),
                ('det', 'student')))
    assert type(atss).__name__ == 'ATSS'
    a, s = atss.bbox_head.prior_generator, student.bbox_head.prior_generator
    assert a.strides == s.strides and \
        a.num_base_priors == s.num_base_priors == [1, 1, 1]
    assert atss.bbox_head.num_classes == student.bbox_head.num_classes
    sizes = [(16, 16), (8, 8), (4, 4)]
    for x, y in zip(a.grid_priors(sizes, device='cpu'),
                    s.grid_priors(sizes, device='cpu')):
        assert torch.equal(x, y)
    inputs = torch.zeros(1, 3, 128, 128)
    atss.eval(), gfl_teacher.eval()
    with torch.no_grad():
        assert [f.shape for f in atss.extract_feat(inputs)] == \
            [f.shape for f in gfl_teacher.extract_feat(inputs)]


def test_born_again_rows_chain_each_seed_through_its_generations(
        tmp_path, monkeypatch):
    """Generation k of a seed is distilled from generation k - 1 of the
    same seed (0: the student alone, a plain checkpoint; later ones a
    distiller's, read through strip_prefix); both rows share generation
    1's runs."""
    trained = []

    def fake_run(task, name, cfg, cache, interval, **kwargs):
        trained.append((name, cfg.model.get('teacher')))
        return dict(AP=0.1 * len(trained), AP50=0.2, s_per_iter=0.1,
                    losses={}, checkpoint=f'/ckpt/{name}.pth')

    monkeypatch.setattr(accuracy, 'run_cached', fake_run)
    rows, _ = accuracy.run_benchmark(
        [('det', 'born_again_gen1'), ('det', 'born_again_gen2')], [0, 1],
        accuracy.SCHEDULES['quick'], str(tmp_path))
    teachers = {name: teacher for name, teacher in trained}
    for seed in (0, 1):
        gen1 = teachers[f'born_again_gen1_seed{seed}']
        gen2 = teachers[f'born_again_gen2_seed{seed}']
        assert gen1['checkpoint'] == f'/ckpt/student_seed{seed}.pth'
        assert 'strip_prefix' not in gen1
        assert gen2['checkpoint'] == f'/ckpt/born_again_gen1_seed{seed}.pth'
        assert gen2['strip_prefix'] == 'student.'
        # the teacher is the student's own architecture
        assert gen2['config'].endswith('digits_gfl_r18w16.py')
    assert [r['method'] for r in rows] == ['born_again_gen1',
                                           'born_again_gen2']
    assert rows[1]['teacher'] is None and rows[1]['teachers'] == {}


def test_paired_gain_is_the_mean_per_seed_difference_and_its_error():
    row = dict(student=[0.20, 0.30, 0.25], distilled=[0.30, 0.32, 0.24])
    mean, error, improved, count = accuracy.paired_gain(row)
    # per-seed gains 0.10, 0.02, -0.01: mean 0.03667; deviations 0.06333,
    # -0.01667, -0.04667 give a sample variance 0.0064667 / 2, so the
    # standard deviation is 0.056862 and its error 0.056862 / sqrt(3)
    assert mean == pytest.approx(0.036667, abs=1e-6)
    assert error == pytest.approx(0.032829, abs=1e-6)
    assert (improved, count) == (2, 3)
    # one seed: no spread to estimate
    assert accuracy.paired_gain(dict(student=[0.2], distilled=[0.1])) == \
        pytest.approx((-0.1, 0.0, 0, 1))


def _timed_row(suite, method, student_cpu, cpu, iters=600):
    return dict(suite=suite, task='det', method=method, iters=iters,
                student_cpu_seconds=student_cpu, cpu_seconds=cpu)


def test_compute_matched_iterations_follow_the_costliest_row_of_the_suite():
    rows = [_timed_row('det', 'a', 10.0, 25.0),  # 2.5x the student
            _timed_row('det', 'b', 10.0, 13.0),
            _timed_row('seg', 'c', 10.0, 90.0)]  # another suite
    assert accuracy.matched_iterations(rows, 'det') == 1500
    # timing noise rounds up to a quarter, so the schedule (and the cached
    # run it names) stays put: 2.6x and 2.7x are both 2.75x
    for cost in (26.0, 27.0):
        rows[0]['cpu_seconds'] = cost
        assert accuracy.matched_iterations(rows, 'det') == 1650
    # a row cheaper than its student asks for no longer schedule
    assert accuracy.matched_iterations(
        [_timed_row('det', 'a', 10.0, 9.0)], 'det') == 600
    # runs cached before CPU time was recorded: nothing to match
    assert accuracy.matched_iterations(
        [_timed_row('det', 'a', None, None)], 'det') is None
    # the compute-matched row itself is no row to match
    assert accuracy.matched_iterations(
        [_timed_row('det', 'a', 10.0, 12.0),
         _timed_row('det', accuracy.COMPUTE_MATCHED, 10.0, 30.0)],
        'det') == 750


def test_quick_run_ends_each_suite_with_the_compute_matched_student(
        tmp_path, monkeypatch):
    # the quick runs' CPU times are too short to rely on: ask for 3
    # iterations where the students alone train 2
    monkeypatch.setattr(accuracy, 'matched_iterations',
                        lambda rows, suite: 3)
    out, work = tmp_path / 'docs', tmp_path / 'work'
    accuracy.main(['--quick', '--methods', 'det:fgfi', '--seeds', '0',
                   '--out', str(out), '--work-dir', str(work),
                   '--compute-matched'])
    rows = json.loads((out / 'benchmarks.json').read_text())
    assert [r['method'] for r in rows] == ['fgfi', accuracy.COMPUTE_MATCHED]
    matched = rows[1]
    assert matched['iters'] == 3 and matched['matched_to'] == 'fgfi'
    assert matched['student'] == rows[0]['student']
    assert matched['cpu_seconds'] > 0 and matched['student_cpu_seconds'] > 0
    assert matched['config'] == osp.relpath(
        accuracy.SUITES['det']['student'], REPO)
    assert any(p.name.startswith('det_student_3it_seed0_')
               for p in work.iterdir())
    table = (out / 'benchmarks.md').read_text()
    assert f'| det | {accuracy.COMPUTE_MATCHED} (3 it, = fgfi) |' in table
    DefaultScope._instance_dict.clear()


def test_render_only_rewrites_the_table_from_the_rows_and_keeps_the_command(
        tmp_path):
    rows = [dict(task='det', suite='det', method='fgfi', metric='AP',
                 config='configs/bench/det/x.py', seeds=[0, 1, 2],
                 student=[0.20, 0.30, 0.25], distilled=[0.30, 0.32, 0.24],
                 teacher=0.6, s_per_iter=0.2, student_s_per_iter=0.1,
                 cpu_seconds=30.0, student_cpu_seconds=20.0)]
    (tmp_path / 'b.json').write_text(json.dumps(rows))
    (tmp_path / 'b.md').write_text(
        '# old\n\n- command: `python tools/benchmark/accuracy.py --seeds '
        '0,1,2 --name b`\n')
    accuracy.main(['--render-only', '--out', str(tmp_path), '--name', 'b'])
    table = (tmp_path / 'b.md').read_text()
    assert '- command: `python tools/benchmark/accuracy.py --seeds 0,1,2 ' \
        '--name b`' in table
    assert '| det | fgfi | AP | 0.600 |' in table
    assert '+0.037 ± 0.033 (2/3)' in table
    assert '20 → 30 (×1.50)' in table
    assert json.loads((tmp_path / 'b.json').read_text()) == rows


def test_task_loss_curve_of_seg_runs_that_log_only_the_total():
    det = dict(loss=[5., 4.], loss_cls=[1., 1.], loss_bbox=[2., 1.],
               loss_distill_ld=[2., 2.])
    assert accuracy.task_loss_curve(det) == [3., 2.]
    # mmseg's decode.loss_ce is not logged: the total less the KD terms
    seg = dict(loss=[3., 2.5], loss_distill_kd=[1., 0.5])
    assert accuracy.task_loss_curve(seg) == [2., 2.]
    assert accuracy.task_loss_curve(dict(loss=[2., 1.])) == [2., 1.]


def test_gain_plot_has_a_panel_per_suite_sorted_with_peers_apart(
        tmp_path, monkeypatch):
    def row(suite, method, gains):
        return dict(task=suite.split('_')[0], suite=suite, method=method,
                    metric='AP', seeds=list(range(len(gains))),
                    student=[0.2] * len(gains),
                    distilled=[0.2 + g for g in gains])
    rows = [row('det', 'a', [0.01, 0.03]), row('det', 'b', [0.1, 0.2]),
            row('det', 'mmrazor_b', [0.05, 0.07]),
            row('det_rcnn', 'c', [-0.1, 0.0])]
    import matplotlib.axes
    bars = []
    real_bar = matplotlib.axes.Axes.bar

    def spy(self, x, height, **kwargs):
        bars.append((self.get_title(), list(height), kwargs['color']))
        return real_bar(self, x, height, **kwargs)
    monkeypatch.setattr(matplotlib.axes.Axes, 'bar', spy)
    files = accuracy.plot(rows, {}, str(tmp_path), 'x')
    assert files == [str(tmp_path / 'x_gain.png')]
    assert osp.getsize(files[0]) > 0
    (_, det, det_colors), (_, rcnn, _) = bars
    assert det == pytest.approx([0.15, 0.06, 0.02])  # sorted by gain
    assert det_colors == ['tab:blue', 'tab:orange', 'tab:blue']
    assert rcnn == pytest.approx([-0.05])


def test_iteration_overrides_are_one_count_or_one_per_task():
    assert accuracy.iterations_by_task('1200') == {None: 1200}
    assert accuracy.iterations_by_task('det=1200,seg=3000') == {
        'det': 1200, 'seg': 3000}
    args = accuracy.parse_args(['--student-iters', 'det=1200,seg=3000',
                                '--teacher-iters', '4000'])
    assert args.student_iters == {'det': 1200, 'seg': 3000}
    assert args.teacher_iters == {None: 4000}
    for bad, says in [('dte=1200', "unknown task 'dte'"),
                      ('det=many', 'not an iteration count'),
                      ('0', 'must be positive')]:
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            accuracy.iterations_by_task(bad)


def test_a_rows_own_hooks_train_with_it_and_other_rows_get_none(
        tmp_path, runner_state_restored):
    """A method config's custom_hooks (here DistillSwitchHook, off for the
    last third) join its runs; rows without any keep their run configs."""
    assert accuracy.method_custom_hooks(
        accuracy.method_config(('seg', 'cwd+dist'))) == []
    row = ('seg', 'cwd+dist_off_last_third')
    assert accuracy.method_custom_hooks(accuracy.method_config(row)) == [
        dict(type='mmkd.DistillSwitchHook', stop_fraction=2 / 3)]
    records = tmp_path / 'records'
    accuracy.main(['--quick', '--methods', 'seg:cwd+dist_off_last_third',
                   '--seeds', '0', '--student-iters', '3', '--out',
                   str(tmp_path / 'docs'), '--work-dir', str(tmp_path / 'w'),
                   '--records', str(records)])
    record = json.loads(next(records.glob(
        'seg_cwd+dist_off_last_third_seed0_*.json')).read_text())
    # 3 iterations: on for the first two (round(2/3 * 3) = 2), off after
    for name in ('loss_distill_logits', 'loss_distill_relations'):
        curve = record['losses'][name]
        assert len(curve) == 3 and curve[0] > 0 and curve[1] > 0
        assert curve[2] == 0.0
