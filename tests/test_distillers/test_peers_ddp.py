"""Two DDP ranks on half batches train the student *and* its peer as one
process on the whole batches (deep mutual learning).

Exact in principle for the reasons given in ``test_ddp_equivalence.py``
(group norm, every image of a batch with the same boxes, so RetinaNet's
positives and the class-KD term's main region split evenly), now with
both models trainable: the peer's parameters join DDP's gradient
reduction without ``find_unused_parameters``, and each term's gradient
reaches only its student side.
"""
import os
import os.path as osp
import subprocess
import sys

import torch
from dml_ddp_worker import build_dml
from ddp_equivalence_worker import train
from test_ddp_equivalence import ATOL, RTOL, _max_gap


def test_dml_on_two_ranks_equals_one_process(tmp_path, det_scope):
    worker = osp.join(osp.dirname(osp.abspath(__file__)),
                      'dml_ddp_worker.py')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', '29541', worker, str(tmp_path)],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-5000:]
    ranks = [torch.load(tmp_path / f'dml_rank{r}.pth') for r in (0, 1)]

    model = build_dml()
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    single = train(model, model)
    half = build_dml()
    half_only = train(half, half, rank=0, world_size=2)

    assert ranks[0].keys() == single.keys()
    peer_keys = [k for k in single if k.startswith('trainable_slots.peer.')]
    assert peer_keys
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), key
        assert torch.allclose(value, single[key], atol=ATOL, rtol=RTOL), (
            key, (value - single[key]).abs().max().item())
    peer_single = {k: single[k] for k in peer_keys}
    assert _max_gap(peer_single, {k: initial[k] for k in peer_keys}) > 1e-2
    assert _max_gap(half_only, single) > 1e-3
