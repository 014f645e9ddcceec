"""Trainable slots under DDP: the worker of ``test_peers_ddp.py``.

Run by ``torchrun --nproc_per_node 2 dml_ddp_worker.py OUT MODEL``, each
rank trains, wrapped in MMEngine's ``MMDistributedDataParallel`` (gloo,
``find_unused_parameters=False``), on its half of the batches of
``ddp_equivalence_worker``, the model ``MODEL`` names:

- ``dml``: a student and a peer of another width (both group norm), each
  learning from the other's class scores (deep mutual learning);
- ``netaug``: a student inside NetAug's wide model (group norm), the
  width drawn from the iteration.

Imported, the same functions build the one-process runs.
"""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import tiny_retinanet  # noqa: E402
from ddp_equivalence_worker import SIZE, gn_student, train  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmkd import Distiller  # noqa: E402


def gn_peer() -> dict:
    cfg = tiny_retinanet(16, 32)
    cfg['backbone']['norm_cfg'] = dict(type='GN', num_groups=4,
                                       requires_grad=True)
    return cfg


def build_dml() -> Distiller:
    torch.manual_seed(0)
    model = Distiller(
        student=gn_student(),
        teachers=dict(peer=dict(role='peer', config=dict(
            default_scope='mmdet', model=gn_peer()))),
        distill=dict(
            to_student=dict(type='HeadClassificationKD',
                            teacher_model='peer', loss_weight=2.0),
            to_peer=dict(type='HeadClassificationKD', student_model='peer',
                         teacher_model='student', loss_weight=2.0)),
        probe_size=(SIZE, SIZE))
    model.init_weights()
    return model


def build_netaug() -> Distiller:
    torch.manual_seed(0)
    model = Distiller(
        student=gn_student(),
        teachers=dict(netaug=dict(role='augmented',
                                  type='mmkd.NetworkAugmentation')),
        distill=dict(), probe_size=(SIZE, SIZE))
    model.init_weights()
    return model


BUILDERS = dict(dml=build_dml, netaug=build_netaug)


def main(out_dir: str, name: str = 'dml') -> None:
    from mmengine.model import MMDistributedDataParallel
    dist.init_process_group('gloo')
    rank, world_size = dist.get_rank(), dist.get_world_size()
    init_default_scope('mmdet')
    distiller = BUILDERS[name]()
    ddp = MMDistributedDataParallel(module=distiller,
                                    find_unused_parameters=False)
    params = train(ddp, distiller, rank, world_size)
    torch.save(params, os.path.join(out_dir, f'{name}_rank{rank}.pth'))
    dist.destroy_process_group()


if __name__ == '__main__':
    main(*sys.argv[1:])
