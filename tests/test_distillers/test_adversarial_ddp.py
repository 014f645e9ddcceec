"""Adversarial distillation under DDP: two gloo ranks on CPU stay in sync,
students and discriminators both, with find_unused_parameters=False."""
import os.path as osp
import subprocess
import sys

import torch
from conftest import save_teacher, tiny_pspnet


def test_two_ranks_keep_student_and_discriminator_in_sync(tmp_path,
                                                          seg_scope):
    ckpt = save_teacher(tiny_pspnet(16, 32), str(tmp_path / 't.pth'),
                        'mmseg')
    worker = osp.join(osp.dirname(osp.abspath(__file__)),
                      'adversarial_ddp_worker.py')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', '29543', worker, ckpt, str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1)]
    for part in ('student', 'adaptor', 'discriminator'):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), (part, key)
    # rank 1 was perturbed before wrapping: rank 0's discriminator won
    moved = [k for k, v in ranks[0]['initial'].items()
             if not torch.equal(v, ranks[0]['discriminator'][k])]
    assert any(k.endswith('weight.original') for k in moved)
    teacher = torch.load(ckpt)['state_dict']
    for rank in ranks:
        for key, value in teacher.items():
            assert torch.equal(value, rank['teacher'][key]), key
    # the ranks saw different data: their discriminator losses differ
    assert ranks[0]['loss'] != ranks[1]['loss']
