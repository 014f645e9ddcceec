"""One rank of the DDP test: run by torchrun from test_ddp.py.

Wraps a Distiller in MMEngine's DDP wrapper on CPU (gloo) with
find_unused_parameters=False, trains two steps on rank-specific batches and
saves what the test compares: student and teacher parameters.
"""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from conftest import tiny_retinanet  # noqa: E402
from mmengine.model import MMDistributedDataParallel  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmkd import Distiller  # noqa: E402
from mmkd.distillers.probe import make_probe_batch  # noqa: E402


def main(teacher_ckpt: str, out_dir: str) -> None:
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=teacher_ckpt),
        distill=dict(fpn=dict(type='FeatureImitation', student='neck',
                              teacher='neck', warmup_iters=1)),
        probe_size=(64, 64))
    model.student.init_weights()
    ddp = MMDistributedDataParallel(module=model, broadcast_buffers=False,
                                    find_unused_parameters=False)
    optim = OptimWrapper(torch.optim.SGD(ddp.parameters(), lr=0.01))
    torch.manual_seed(100 + rank)  # each rank sees other data
    for _ in range(2):  # step 0 in warm-up (term × 0), step 1 active
        inputs, samples = make_probe_batch(model.student, (64, 64))
        losses = ddp(torch.randn_like(inputs), samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        optim.update_params(loss)
    # parameters only: BN statistics differ per rank (broadcast_buffers off)
    torch.save(dict(student=dict(model.student.named_parameters()),
                    adaptor=dict(model.distill_terms.named_parameters()),
                    teacher=model.teacher.state_dict()),
               os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
