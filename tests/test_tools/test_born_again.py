"""tools/born_again.py: generations of one student, each taught by the last.

One real run through the command line (generation 0 and one distilled
generation of 2 iterations on tiny generated COCO digits); the checks of
what it left on disk, the resumption and the refusals of bad input run on
it. The distill config's teacher is a different (wider) architecture,
which born-again never builds.
"""
import importlib.util
import json
import math
import os
import os.path as osp
import re

import pytest
import torch
from chain import REPO, run_tool, tool
from conftest import save_teacher, tiny_retinanet
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope


def _born_again_module():
    spec = importlib.util.spec_from_file_location(
        'mmkd_born_again_tool', osp.join(REPO, 'tools', 'born_again.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _detector(base: int, width: int) -> dict:
    model = tiny_retinanet(base, width)
    model['bbox_head']['num_classes'] = 10
    # an untrained detector scores below mmdet's default 0.05
    model['test_cfg']['score_thr'] = 0.0
    return model


def _write_config(path: str, model: dict, data_root: str) -> str:
    from digits_kd_demo import runner_config
    cfg = runner_config(model, data_root, 'unused', iters=2, seed=0,
                        batch_size=2)
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.val_dataloader.batch_size = 4
    cfg.custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
    cfg.dump(path)
    return path


def _distiller(teacher_ckpt: str, teacher_path: str = 'neck') -> dict:
    return dict(
        type='mmkd.Distiller', student=_detector(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=_detector(16, 32)),
                     checkpoint=teacher_ckpt),
        distill=dict(fpn=dict(type='FeatureImitation', student='neck',
                              teacher=teacher_path, loss_weight=1.0)),
        probe_size=(64, 64))


def _mtimes(folder) -> dict:
    return {name: os.stat(osp.join(folder, name)).st_mtime_ns
            for name in sorted(os.listdir(folder)) if name.endswith('.pth')}


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    from digits_coco import generate
    root = tmp_path_factory.mktemp('born_again')
    data = str(root / 'data')
    generate(data, num_train=4, num_val=4, seed=0)
    teacher = save_teacher(_detector(16, 32), str(root / 'teacher.pth'),
                           'mmdet')
    distill = _write_config(str(root / 'distill.py'), _distiller(teacher),
                            data)
    work = root / 'ba'
    proc = run_tool([tool('born_again.py'), distill, '--generations', '1',
                     '--work-dir', str(work)], cwd=str(root))
    return dict(root=root, data=data, teacher=teacher, distill=distill,
                work=work, log=proc.stdout + proc.stderr)


def test_every_generation_keeps_its_checkpoints(workspace):
    work = workspace['work']
    for k in (0, 1):
        result = json.loads((work / f'gen_{k}' / 'result.json').read_text())
        assert result['generation'] == k
        assert result['checkpoint'] == str(work / f'gen_{k}' / 'iter_2.pth')
        assert osp.isfile(result['checkpoint'])
        assert osp.isfile(result['student_checkpoint'])
        assert result['seconds'] > 0
    # generation 0 trained the plain student, not a distiller
    gen0 = torch.load(work / 'gen_0' / 'iter_2.pth', weights_only=False)
    assert any(k.startswith('backbone.') for k in gen0['state_dict'])
    gen1 = torch.load(work / 'gen_1' / 'iter_2.pth', weights_only=False)
    assert any(k.startswith('student.') for k in gen1['state_dict'])
    assert not any(k.startswith('teacher') for k in gen1['state_dict'])


def test_generation_1_is_taught_by_generation_0(workspace):
    import mmkd  # noqa: F401
    work = workspace['work']
    cfg = Config.fromfile(str(work / 'gen_1' / 'config.py'))
    assert cfg.model.teacher.config == cfg.model.student  # same architecture
    with DefaultScope.overwrite_default_scope('mmdet'):
        distiller = MODELS.build(cfg.model)
    taught_by = distiller.teacher.state_dict()
    gen0 = torch.load(work / 'gen_0' / 'iter_2.pth',
                      weights_only=False)['state_dict']
    assert taught_by.keys() == gen0.keys()
    for key, value in gen0.items():
        assert torch.equal(taught_by[key], value), key
    # ... and not by the config's own (wider, random) teacher
    assert distiller.teacher.neck.fpn_convs[0].conv.out_channels == 16
    # the distilled generation's plain checkpoint is the trained student
    gen1 = torch.load(work / 'gen_1' / 'iter_2.pth', weights_only=False)
    plain = torch.load(work / 'gen_1' / 'student.pth', weights_only=True)
    assert plain['state_dict'].keys() == gen0.keys()
    assert torch.equal(plain['state_dict']['neck.fpn_convs.0.conv.weight'],
                       gen1['state_dict']['student.neck.fpn_convs.0.conv.'
                                          'weight'])


def test_table_has_one_row_per_generation(workspace):
    work, log = workspace['work'], workspace['log']
    summary = json.loads((work / 'born_again.json').read_text())
    rows = summary['generations']
    assert [r['generation'] for r in rows] == [0, 1]
    assert [r['teacher'] for r in rows] == [None, 'gen_0']
    assert summary['metric'] == 'AP'
    assert all(math.isfinite(r['value']) for r in rows)
    assert re.search(r'generation \| teacher \| AP', log)
    printed = re.findall(r'^(\d+) +\| (\S+) +\| (-?[\d.]+)', log, re.M)
    assert [(g, t) for g, t, _ in printed] == [('0', '-'), ('1', 'gen_0')]
    assert all(math.isfinite(float(v)) for _, _, v in printed)


def test_resume_generations_keeps_finished_ones(workspace, capsys):
    born_again = _born_again_module()
    work = workspace['work']
    before = {k: _mtimes(work / f'gen_{k}') for k in (0, 1)}
    args = [workspace['distill'], '--generations', '1', '--work-dir',
            str(work)]
    # without the flag an existing work dir is refused, untouched
    with pytest.raises(SystemExit, match='--resume-generations'):
        born_again.main(args)
    # another schedule is refused too, naming what changed
    with pytest.raises(SystemExit, match='differs in train_cfg.max_iters'):
        born_again.main([*args, '--resume-generations', '--cfg-options',
                         'train_cfg.max_iters=3'])
    rows = born_again.main([*args, '--resume-generations'])
    out = capsys.readouterr().out
    assert 'gen_0: kept' in out and 'gen_1: kept' in out
    assert 'training' not in out
    assert [r['generation'] for r in rows] == [0, 1]
    assert {k: _mtimes(work / f'gen_{k}') for k in (0, 1)} == before


def test_interrupted_generation_resumes(workspace, tmp_path):
    work = tmp_path / 'ba'
    for k in (0, 1):  # a copy of the finished run, gen_1 cut short
        src, dst = workspace['work'] / f'gen_{k}', work / f'gen_{k}'
        dst.mkdir(parents=True)
        for name in os.listdir(src):
            if osp.isfile(src / name):
                content = (src / name).read_bytes()
                if not name.endswith('.pth'):  # paths in results, configs
                    content = content.replace(
                        str(workspace['work']).encode(), str(work).encode())
                (dst / name).write_bytes(content)
    (work / 'gen_1' / 'result.json').unlink()
    (work / 'gen_1' / 'student.pth').unlink()
    gen0 = _mtimes(work / 'gen_0')
    proc = run_tool([tool('born_again.py'), workspace['distill'],
                     '--generations', '1', '--work-dir', str(work),
                     '--resume-generations'], cwd=str(tmp_path))
    log = proc.stdout + proc.stderr
    assert 'gen_0: kept' in log
    assert f'gen_1: interrupted, resuming from {work}/gen_1/iter_2.pth' \
        in log
    assert _mtimes(work / 'gen_0') == gen0
    assert (work / 'gen_1' / 'result.json').is_file()
    assert (work / 'gen_1' / 'student.pth').is_file()


def test_refuses_a_config_that_is_not_a_distiller(workspace, tmp_path):
    born_again = _born_again_module()
    plain = _write_config(str(tmp_path / 'plain.py'), _detector(8, 16),
                          workspace['data'])
    with pytest.raises(SystemExit, match='not an mmkd distill config.*'
                       'model.type is .RetinaNet.'):
        born_again.main([plain, '--work-dir', str(tmp_path / 'ba')])
    assert not (tmp_path / 'ba').exists()


def test_refuses_fewer_than_one_generation(workspace, tmp_path):
    born_again = _born_again_module()
    with pytest.raises(SystemExit, match='--generations must be at least '
                       '1.*got 0'):
        born_again.main([workspace['distill'], '--generations', '0',
                         '--work-dir', str(tmp_path / 'ba')])
    assert not (tmp_path / 'ba').exists()


def test_a_term_the_student_cannot_teach_fails_before_training(
        workspace, tmp_path):
    born_again = _born_again_module()
    # the wide teacher has this module path, the student does not
    bad = _distiller(workspace['teacher'], 'neck.lateral_convs.3')
    wide = bad['teacher']['config']['model']
    wide['backbone']['out_indices'] = (0, 1, 2, 3)
    wide['neck'].update(in_channels=[16, 32, 64, 128], num_outs=4)
    path = _write_config(str(tmp_path / 'bad.py'), bad, workspace['data'])
    with pytest.raises(SystemExit) as err:
        born_again.main([path, '--work-dir', str(tmp_path / 'ba')])
    message = str(err.value)
    assert message.startswith('born_again: generation 1 ')
    assert "'fpn'" in message and 'neck.lateral_convs.3' in message
    assert not (tmp_path / 'ba').exists()


def test_generation_configs_of_an_adversarial_config():
    born_again = _born_again_module()
    student = dict(type='EncoderDecoder')
    cfg = Config(dict(
        model=dict(type='mmkd.Distiller', student=student,
                   teacher=dict(config='wide.py', checkpoint='t.pth',
                                strip_prefix='student.',
                                autocast='bfloat16'),
                   distill=dict(adv=dict(type='HolisticAdversarialKD'))),
        optim_wrapper=dict(
            constructor='mmkd.AdversarialOptimWrapperConstructor',
            student=dict(optimizer=dict(type='SGD', lr=0.01)),
            discriminator=dict(optimizer=dict(type='SGD', lr=4e-4))),
        param_scheduler=dict(student=[dict(type='PolyLR')],
                             discriminator=[dict(type='PolyLR', eta_min=0)]),
        model_wrapper_cfg=dict(type='mmkd.AdversarialDistillerDDP'),
        custom_hooks=[dict(type='mmkd.DistillSwitchHook', stop_iter=5),
                      dict(type='EMAHook')]))
    gen0 = born_again.generation_config(cfg, 0, 'w', 'x')
    assert gen0.model == student and gen0.work_dir == osp.join('w', 'gen_0')
    assert gen0.optim_wrapper == dict(optimizer=dict(type='SGD', lr=0.01))
    assert gen0.param_scheduler == [dict(type='PolyLR')]
    assert 'model_wrapper_cfg' not in gen0
    assert [h['type'] for h in gen0.custom_hooks] == ['EMAHook']
    gen2 = born_again.generation_config(cfg, 2, 'w', 'x')
    assert gen2.model.teacher == dict(
        config=student, autocast='bfloat16',
        checkpoint=osp.abspath(osp.join('w', 'gen_1', 'student.pth')))
    assert gen2.optim_wrapper == cfg.optim_wrapper
    assert gen2.model_wrapper_cfg == cfg.model_wrapper_cfg
    assert gen2.experiment_name == 'x_gen2'
    assert cfg.model.teacher.config == 'wide.py'  # the input is unchanged
    assert born_again.headline_metric(dict(mAcc=70.0, mIoU=55.5)) == (
        'mIoU', 'mIoU', 55.5)
