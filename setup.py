"""Packaging of mmkd.

The shipped configs travel inside the package, as MMDetection's do: at build
time ``configs/`` and ``model-index.yml`` are linked (or copied) into
``mmkd/.mim/``, where MMEngine looks up a package's configs, so that after
``pip install`` a config can say ``_base_ = 'mmkd::det/ld/<config>.py'``.
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup

REPO = osp.dirname(osp.abspath(__file__))
MIM = osp.join(REPO, 'mmkd', '.mim')
#: what goes into ``mmkd/.mim``: repository path -> path under ``.mim``
MIM_FILES = {'configs': 'configs', 'model-index.yml': 'model-index.yml'}

# The versions mmkd supports. The lower bounds are the oldest combination
# tools/check_oldest_env.sh installs and tests (torch: the APIs mmkd calls,
# e.g. torch.is_autocast_enabled(device_type), appeared in 2.4; mmengine
# 0.8.0 cannot print a config with today's yapf, whose FormatCode lost its
# `verify` argument, and 0.8.5 can (0.8.1-0.8.4 untried); mmsegmentation
# 1.2.0's wheel lacks the BPE vocabulary its models read at import; mmdet
# 3.1.0 asserts mmcv < 2.1.0 on import, and mmkd is built and tested with
# mmcv 2.1.0 only); the upper bounds exclude the next minor versions, which
# mmkd has not met. mmcv
# (>=2.1, <2.2 with mmdet 3.2/3.3) is not listed: it must be built with its
# compiled ops (see tools/setup_env.sh), which pip would not do.
INSTALL_REQUIRES = [
    'torch>=2.4',
    'mmengine>=0.8.5,<1.0.0',
    'mmdet>=3.2.0,<3.4.0',
    'mmsegmentation>=1.2.1,<1.3.0',
    'pycocotools',
]


def add_mim_files() -> None:
    """Put the configs and the model index into ``mmkd/.mim``.

    A symbolic link keeps an editable install in step with ``configs/``;
    where links are not possible the files are copied. Nothing is done when
    building from an unpacked sdist that has no ``configs/`` beside this
    file but already holds ``mmkd/.mim``.
    """
    for src_name, dst_name in MIM_FILES.items():
        src = osp.join(REPO, src_name)
        dst = osp.join(MIM, dst_name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)  # a copy made by an earlier build
        os.makedirs(MIM, exist_ok=True)
        try:
            os.symlink(osp.relpath(src, MIM), dst)
        except OSError:  # e.g. a file system without links
            if osp.isdir(src):
                shutil.copytree(src, dst)
            else:
                shutil.copyfile(src, dst)


add_mim_files()

setup(
    name='mmkd',
    version='0.1.0',
    description='Knowledge distillation for MMDetection and MMSegmentation',
    packages=find_packages(include=['mmkd', 'mmkd.*']),
    package_data={
        'mmkd': [
            '.mim/model-index.yml',
            '.mim/configs/**/*.py',
            '.mim/configs/**/*.yml',
            '.mim/configs/**/*.md',
        ]
    },
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
)
