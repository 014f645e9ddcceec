"""The distiller under DDP, on CPU with two gloo processes.

The teacher is no submodule, so it is neither broadcast nor reduced, and
find_unused_parameters=False works even while a term is in warm-up.
"""
import os.path as osp
import subprocess
import sys

import torch
from conftest import save_teacher, tiny_retinanet


def test_two_ranks_stay_in_sync_and_teacher_is_untouched(tmp_path,
                                                         det_scope):
    ckpt = save_teacher(tiny_retinanet(16, 32), str(tmp_path / 't.pth'),
                        'mmdet')
    worker = osp.join(osp.dirname(osp.abspath(__file__)), 'ddp_worker.py')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', '29517', worker, ckpt, str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1)]
    teacher = torch.load(ckpt)['state_dict']
    for key, value in ranks[0]['student'].items():
        assert torch.equal(value, ranks[1]['student'][key]), key
    for key, value in ranks[0]['adaptor'].items():
        assert torch.equal(value, ranks[1]['adaptor'][key]), key
    for rank in ranks:
        for key, value in teacher.items():
            assert torch.equal(value, rank['teacher'][key]), key
