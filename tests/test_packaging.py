"""mmkd as a user installs it: a plain (non-editable) ``pip install`` into a
temporary location, then a config that takes a shipped config as its base
by ``mmkd::``, as mmdet's configs are taken by ``mmdet::``."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHIPPED = 'det/ld/ld_head_gfl_r101_gfl_r18_fpn_1x_coco.py'

# run in a fresh interpreter: the development environment's editable mmkd
# (a meta-path finder that would win over sys.path) is removed first, so
# `import mmkd` finds the installed copy
LOAD = textwrap.dedent('''
    import json, sys
    sys.meta_path = [f for f in sys.meta_path
                     if 'editable' not in type(f).__module__]
    site, user_config = sys.argv[1:]
    sys.path.insert(0, site)
    import mmkd
    from mmengine.config import Config
    cfg = Config.fromfile(user_config)
    print(json.dumps(dict(
        mmkd=mmkd.__file__, type=cfg.model.type,
        teacher=cfg.model.teacher.config,
        student_depth=cfg.model.student.backbone.depth,
        max_epochs=cfg.train_cfg.max_epochs)))
''')


def _source_copy(dst: str) -> str:
    """What an sdist holds: setup.py, MANIFEST.in, the package, the configs
    and the model index (not the tests, tools or the development links)."""
    ignore = shutil.ignore_patterns('__pycache__', '.mim', '*.egg-info')
    os.makedirs(dst)
    for name in ('setup.py', 'MANIFEST.in', 'model-index.yml'):
        shutil.copy(osp.join(REPO, name), dst)
    for name in ('mmkd', 'configs'):
        shutil.copytree(osp.join(REPO, name), osp.join(dst, name),
                        ignore=ignore)
    return dst


@pytest.fixture(scope='module')
def installed(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('install')
    src = _source_copy(str(root / 'src'))
    site = str(root / 'site')
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
         '--no-index', '--no-build-isolation', '--disable-pip-version-check',
         '--target', site, src],
        check=True, capture_output=True, text=True)
    return site


def _load(site: str, config: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH='')
    return subprocess.run([sys.executable, '-c', LOAD, site, config],
                          capture_output=True, text=True, env=env,
                          cwd=osp.dirname(config))


def test_the_package_holds_the_configs_and_model_index(installed):
    mim = osp.join(installed, 'mmkd', '.mim')
    shipped = osp.join(mim, 'configs', SHIPPED)
    # copies, not links back into a source tree that may be gone
    assert osp.isfile(shipped) and not osp.islink(shipped)
    assert osp.isfile(osp.join(mim, 'model-index.yml'))
    assert osp.isfile(osp.join(mim, 'configs', 'det', 'ld', 'metafile.yml'))
    # the relative base the shipped config names came along
    assert os.listdir(osp.join(mim, 'configs', 'det', 'ld', 'students'))


def test_a_user_config_takes_a_shipped_config_as_base(installed, tmp_path):
    user = tmp_path / 'my_ld.py'
    user.write_text(f"_base_ = 'mmkd::{SHIPPED}'\n"
                    'train_cfg = dict(max_epochs=1)\n')
    done = _load(installed, str(user))
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded['mmkd'].startswith(installed)
    assert loaded['type'] == 'mmkd.Distiller'
    assert loaded['teacher'].startswith('mmdet::gfl/')
    assert loaded['student_depth'] == 18
    assert loaded['max_epochs'] == 1


def test_an_unknown_shipped_config_names_the_missing_file(installed,
                                                          tmp_path):
    user = tmp_path / 'typo.py'
    user.write_text("_base_ = 'mmkd::det/ld/no_such_config.py'\n")
    done = _load(installed, str(user))
    assert done.returncode != 0
    assert 'no_such_config.py' in done.stderr
