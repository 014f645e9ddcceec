"""The shipped SKD pixel+pair+holistic config through the tools, as a user
runs it: train.py (two optimizers), train.py --resume and
extract_student.py (checked against the plain student config), on tiny
Cityscapes-format scenes (64×128). test_seg_chain.py runs the plain
test.py on an extracted student.

Only the data, the crop size, the schedule length and the teacher change:
a PSPNet-R18 with random weights saved locally (no download; an R101
teacher costs about a minute a step on a shared CPU even at 64×128, and
test_configs_seg_structured.py trains the config with its R101).
"""
import os.path as osp
import re

import numpy as np
import pytest
import torch
from chain import REPO, run_tool, tool
from conftest import save_teacher
from mmengine.config import Config
from test_seg_chain import DATA, PLAIN, make_cityscapes

from mmkd.distillers.teacher import resolve_config_path

HOLISTIC = osp.join(
    REPO, 'configs/seg/skd/skd_pixel-pair-holistic_pspnet_r101-d8_'
    'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py')
TEACHER = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

DISTILL = f"_base_ = {HOLISTIC!r}\n" + DATA + '''
model = dict(teacher=dict(config={teacher_config!r},
                          checkpoint={teacher!r}),
             probe_size=(64, 128))
'''
KD_OPTS = ['model.student.pretrained=None',
           'model.student.data_preprocessor.size=(64,128)']


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('adv')
    rng = np.random.default_rng(0)
    make_cityscapes(str(root / 'data'), 'train', 4, rng)
    make_cityscapes(str(root / 'data'), 'val', 2, rng)
    plain = root / 'plain.py'
    plain.write_text(PLAIN.format(data_root=str(root / 'data')))
    teacher = Config.fromfile(resolve_config_path(TEACHER))
    ckpt = save_teacher(teacher.model, str(root / 'teacher.pth'), 'mmseg')
    distill = root / 'distill.py'
    distill.write_text(DISTILL.format(data_root=str(root / 'data'),
                                      teacher_config=TEACHER, teacher=ckpt))
    work_dir = root / 'kd'
    first = run_tool([tool('train.py'), str(distill), '--work-dir',
                      str(work_dir), '--cfg-options', *KD_OPTS],
                     cwd=str(root))
    saved = torch.load(work_dir / 'iter_2.pth', weights_only=False)
    resumed = run_tool([tool('train.py'), str(distill), '--work-dir',
                        str(work_dir), '--resume', '--cfg-options',
                        *KD_OPTS, 'train_cfg.max_iters=3'], cwd=str(root))
    return dict(root=root, plain=plain, ckpt=work_dir / 'iter_2.pth',
                saved=saved, first=first.stdout + first.stderr,
                resumed=resumed.stdout + resumed.stderr,
                last=torch.load(work_dir / 'iter_3.pth',
                                weights_only=False))


def test_train_logs_every_term_and_the_discriminator(workspace):
    log = workspace['first']
    for key in ('loss_distill_pixel', 'loss_distill_pair',
                'loss_distill_holistic', 'loss_discriminator_holistic'):
        assert re.search(rf'{key}: -?\d', log), key
    assert re.search(r'mIoU: \d', log)


def test_checkpoint_holds_both_optimizers_and_the_discriminator(workspace):
    saved = workspace['saved']
    assert set(saved['optimizer']) == {'student', 'discriminator'}
    assert set(saved['param_schedulers']) == {'student', 'discriminator'}
    assert saved['optimizer']['discriminator']['param_groups'][0][
        'initial_lr'] == pytest.approx(4e-4)
    assert any('.discriminator.' in k for k in saved['state_dict'])
    assert not any(k.startswith('teacher') for k in saved['state_dict'])


def test_resume_continues_both_optimizers(workspace):
    assert 'resumed' in workspace['resumed'].lower()
    last = workspace['last']
    assert last['meta']['iter'] == 3
    for key in ('student', 'discriminator'):
        assert last['param_schedulers'][key][0]['last_step'] == 3
        before = workspace['saved']['optimizer'][key]['state']
        after = last['optimizer'][key]['state']
        assert set(before) == set(after)  # momentum buffers carried on
        assert any(not torch.equal(before[i]['momentum_buffer'],
                                   after[i]['momentum_buffer'])
                   for i in before)


def test_extract_drops_the_discriminator(workspace):
    root = workspace['root']
    out = root / 'student.pth'
    run_tool([tool('extract_student.py'), str(workspace['ckpt']), str(out),
              '--student-config', str(workspace['plain'])], cwd=str(root))
    weights = torch.load(out, weights_only=True)['state_dict']
    assert not any('discriminator' in k or 'distill_terms' in k
                   for k in weights)
    kd = workspace['saved']['state_dict']
    assert set(weights) == {k[len('student.'):] for k in kd
                            if k.startswith('student.')}
