"""tools/train.py's flags turn into the config MMEngine's Runner reads."""
import importlib.util
import os.path as osp

import pytest
import torch
from chain import REPO


def _train_module():
    spec = importlib.util.spec_from_file_location(
        'mmkd_train_tool', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text("optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))"
                    "\nmodel = dict(type='X')\n")
    return str(path)


def _config(argv, monkeypatch):
    train = _train_module()
    monkeypatch.setattr('sys.argv', ['train.py', *argv])
    return train.build_config(train.parse_args())


def test_amp_switches_the_optim_wrapper(config_file, monkeypatch):
    cfg = _config([config_file, '--amp'], monkeypatch)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_resume_auto_and_explicit(config_file, tmp_path, monkeypatch):
    cfg = _config([config_file, '--resume'], monkeypatch)
    assert cfg.resume is True and cfg.load_from is None
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1))), ckpt)
    cfg = _config([config_file, '--resume', str(ckpt)], monkeypatch)
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    with pytest.raises(SystemExit, match='not found'):
        _config([config_file, '--resume', str(tmp_path / 'no.pth')],
                monkeypatch)


def test_resume_refuses_corrupt_checkpoints_by_name(config_file, tmp_path,
                                                    monkeypatch):
    good, bad = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1))), good)
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(SystemExit, match=f'Cannot resume from {bad} '
                       r'\(given to --resume\).*--resume ' + str(good)):
        _config([config_file, '--resume', str(bad)], monkeypatch)
    (tmp_path / 'last_checkpoint').write_text(str(bad))
    with pytest.raises(SystemExit, match='named in .*last_checkpoint'):
        _config([config_file, '--resume', '--work-dir', str(tmp_path)],
                monkeypatch)


def test_every_run_guards_its_checkpoints(config_file, tmp_path,
                                          monkeypatch):
    cfg = _config([config_file], monkeypatch)
    assert cfg.custom_hooks == [dict(type='mmkd.FiniteCheckpointHook')]
    path = tmp_path / 'own.py'
    path.write_text("model = dict(type='X')\ncustom_hooks = ["
                    "dict(type='mmkd.FiniteCheckpointHook'), "
                    "dict(type='EMAHook')]\n")
    cfg = _config([str(path)], monkeypatch)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'mmkd.FiniteCheckpointHook', 'EMAHook']


def test_work_dir_and_cfg_options(config_file, monkeypatch):
    cfg = _config([config_file, '--work-dir', 'here', '--cfg-options',
                   'model.type=Y'], monkeypatch)
    assert cfg.work_dir == 'here' and cfg.model.type == 'Y'
    cfg = _config([config_file], monkeypatch)
    assert cfg.work_dir == osp.join('./work_dirs', 'cfg')


def test_missing_config_is_a_clear_exit(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match='Config file not found'):
        _config([str(tmp_path / 'nope.py')], monkeypatch)
