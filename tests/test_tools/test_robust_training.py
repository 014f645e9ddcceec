"""tools/train.py on bad numbers and broken files, as a user meets them:
each stops with a message naming what to change and leaves what is on
disk untouched."""
import os
import os.path as osp
import re
import shutil

import pytest
import torch
from chain import run_tool, tool
from test_det_chain import DISTILL, KD_OPTS, PLAIN, PLAIN_OPTS


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Tiny digits data, a one-epoch teacher and a two-epoch distillation
    run (work dir ``good``: epoch_1.pth, epoch_2.pth), all by train.py."""
    from digits_coco import generate
    root = tmp_path_factory.mktemp('robust')
    generate(str(root / 'data'), num_train=4, num_val=2, seed=0)
    plain = root / 'plain.py'
    plain.write_text(PLAIN.format(data_root=str(root / 'data')))
    run_tool([tool('train.py'), str(plain), '--work-dir',
              str(root / 'teacher'), '--cfg-options', *PLAIN_OPTS],
             cwd=str(root))
    distill = root / 'distill.py'
    distill.write_text(DISTILL.format(
        data_root=str(root / 'data'), teacher_config=str(plain),
        teacher=str(root / 'teacher' / 'epoch_1.pth')))
    workspace = dict(root=root, distill=distill)
    proc = _train(workspace, 'good', 'train_cfg.max_epochs=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workspace


def _train(workspace, work_dir, *options, extra=()):
    return run_tool([tool('train.py'), str(workspace['distill']),
                     '--work-dir', str(workspace['root'] / work_dir),
                     *extra, '--cfg-options', *KD_OPTS, *options],
                    cwd=str(workspace['root']), check=False)


def _copy_of_good_run(workspace, name):
    folder = workspace['root'] / name
    shutil.copytree(workspace['root'] / 'good', folder)
    return folder


def _snapshot(folder):
    return {name: os.stat(osp.join(folder, name)).st_mtime_ns
            for name in os.listdir(folder) if name.endswith('.pth')}


def test_exploding_learning_rate_stops_and_keeps_good_checkpoints(
        workspace):
    """lr = 1e12 from the good weights (load_from, so the config's lr is
    used): the loss goes NaN at iteration 2, the last of epoch 1; training
    stops before that step, so epoch 1's checkpoint is never overwritten
    with NaN weights."""
    work_dir = _copy_of_good_run(workspace, 'explode')
    before = _snapshot(work_dir)
    proc = _train(workspace, 'explode', 'train_cfg.max_epochs=3',
                  f'load_from={work_dir / "epoch_2.pth"}',
                  'optim_wrapper.optimizer.lr=1e12')
    assert proc.returncode != 0
    assert re.search(r'NonFiniteLossError: Iteration \d+: the task loss '
                     r'loss_\w+ is nan', proc.stderr), proc.stderr[-3000:]
    assert _snapshot(work_dir) == before  # nothing written or rewritten
    import mmkd  # noqa: F401  (allow-lists MMEngine's types)
    state = torch.load(work_dir / 'epoch_1.pth',
                       weights_only=True)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


def test_corrupt_latest_checkpoint_names_it_and_the_previous_good(
        workspace):
    work_dir = _copy_of_good_run(workspace, 'resume')
    latest = work_dir / 'epoch_2.pth'
    (work_dir / 'last_checkpoint').write_text(str(latest))
    data = latest.read_bytes()
    latest.write_bytes(data[:len(data) // 3])  # a save cut short
    proc = _train(workspace, 'resume', 'train_cfg.max_epochs=3',
                  extra=['--resume'])
    assert proc.returncode != 0
    message = proc.stderr
    assert f'Cannot resume from {latest}' in message
    assert f'--resume {work_dir / "epoch_1.pth"}' in message
    assert latest.stat().st_size == len(data) // 3  # nothing rewritten
    assert not osp.exists(work_dir / 'epoch_3.pth')


def test_corrupt_coco_annotation_file_is_named(workspace):
    root = workspace['root']
    data = root / 'data_corrupt'
    shutil.copytree(root / 'data', data)
    ann = data / 'train.json'
    ann.write_text(ann.read_text()[:200])
    proc = run_tool([tool('train.py'), str(workspace['distill']),
                     '--work-dir', str(root / 'corrupt'), '--cfg-options',
                     *KD_OPTS, f'train_dataloader.dataset.data_root={data}'],
                    cwd=str(root), check=False)
    assert proc.returncode != 0
    assert f'Corrupt annotation file(s), not valid JSON: {ann}' in \
        proc.stderr
