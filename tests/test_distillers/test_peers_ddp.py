"""Two DDP ranks on half batches train the student *and* its trainable
slot as one process on the whole batches: a DML peer, NetAug's wide
model.

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
import pytest
from ddp_equivalence_worker import train
from dml_ddp_worker import BUILDERS
from test_ddp_equivalence import ATOL, RTOL, _max_gap


#: model -> (the state-dict prefix of its trainable slot, torchrun port)
SLOTS = dict(dml=('trainable_slots.peer.', 29541),
             netaug=('trainable_slots.netaug.', 29542))


@pytest.mark.parametrize('name', sorted(SLOTS))
def test_slot_on_two_ranks_equals_one_process(name, tmp_path, det_scope):
    prefix, port = SLOTS[name]
    worker = osp.join(osp.dirname(osp.abspath(__file__)),
                      'dml_ddp_worker.py')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', str(port), worker, str(tmp_path), name],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-5000:]
    ranks = [torch.load(tmp_path / f'{name}_rank{r}.pth') for r in (0, 1)]

    model = BUILDERS[name]()
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    single = train(model, model)
    half = BUILDERS[name]()
    half_only = train(half, half, rank=0, world_size=2)

    assert ranks[0].keys() == single.keys()
    slot_keys = [k for k in single if k.startswith(prefix)]
    assert slot_keys
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), key
        assert torch.allclose(value, single[key], atol=ATOL, rtol=RTOL), (
            key, (value - single[key]).abs().max().item())
    slot_single = {k: single[k] for k in slot_keys}
    assert _max_gap(slot_single, {k: initial[k] for k in slot_keys}) > 1e-2
    assert _max_gap(half_only, single) > 1e-3
