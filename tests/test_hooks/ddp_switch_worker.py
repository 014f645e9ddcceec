"""One rank of the DDP test of test_distill_switch.py, run by torchrun.

MMEngine's DDP wrapper on CPU (gloo), find_unused_parameters=False, a
distiller whose terms own parameters (FGD relation blocks, MGD generation
blocks, adaptors), one of them switched off as DistillSwitchHook does;
two steps on rank-specific batches, then the parameters are saved.
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
    adaptor = dict(type='ConvAdaptor')
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=teacher_ckpt),
        distill=dict(
            fgd=dict(type='FocalGlobalKD', student='neck', teacher='neck',
                     adaptor=adaptor),
            mgd=dict(type='MaskedGenerativeKD', student='neck',
                     teacher='neck', adaptor=adaptor),
            cwd=dict(type='ChannelWiseKD', student='neck', teacher='neck',
                     adaptor=adaptor)),
        probe_size=(64, 64))
    model.student.init_weights()
    model.distill_terms.cwd.enabled = False  # as DistillSwitchHook does
    ddp = MMDistributedDataParallel(module=model, broadcast_buffers=False,
                                    find_unused_parameters=False)
    optim = OptimWrapper(torch.optim.SGD(ddp.parameters(), lr=0.01))
    torch.manual_seed(100 + rank)  # other data and MGD masks per rank
    for _ in range(2):
        inputs, samples = make_probe_batch(model.student, (64, 64))
        losses = ddp(torch.randn_like(inputs), samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        optim.update_params(loss)
    torch.save(dict(student=dict(model.student.named_parameters()),
                    terms=dict(model.distill_terms.named_parameters())),
               os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
