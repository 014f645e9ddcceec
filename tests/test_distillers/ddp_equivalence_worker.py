"""Training shared by the DDP-equivalence test and its torchrun ranks.

Run as a script by ``torchrun --nproc_per_node 2`` (from
``test_ddp_equivalence.py``), each rank trains a :class:`Distiller` wrapped
in MMEngine's ``MMDistributedDataParallel`` (gloo, CPU,
``find_unused_parameters=False``) on its half of every batch and saves the
trainable parameters. Imported by the test, the same functions train one
process on the whole batches.
"""
import os
import sys
from typing import Dict, List

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from conftest import tiny_retinanet  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmkd import Distiller  # noqa: E402

ITERS = 3
BATCH = 4  # the whole batch; each of two ranks takes half
SIZE = 64


def gn_student() -> dict:
    """The tiny RetinaNet with group norm: no batch statistics, so each
    image's outputs do not depend on the other images of the batch."""
    cfg = tiny_retinanet(8, 16)
    cfg['backbone']['norm_cfg'] = dict(type='GN', num_groups=4,
                                       requires_grad=True)
    return cfg


def build_distiller(teacher_ckpt: str) -> Distiller:
    """Two imitation terms normalised by mask sums, one per mask kind."""
    torch.manual_seed(0)
    model = Distiller(
        student=gn_student(),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=teacher_ckpt),
        distill=dict(
            box=dict(type='FeatureImitation', student='neck',
                     teacher='neck', mask=dict(type='GtBoxMask',
                                               bg_weight=0.5)),
            fgfi=dict(type='FeatureImitation', student='neck',
                      teacher='neck', mask=dict(type='FGFIMask'),
                      normalize='fgfi', loss_weight=0.1)),
        probe_size=(SIZE, SIZE))
    model.student.init_weights()  # RetinaNet's prior-probability bias
    return model


def make_batches() -> List[dict]:
    """``ITERS`` batches of ``BATCH`` random images.

    Every image of a batch has the same boxes (they move from batch to
    batch), so every image has the same number of RetinaNet positives and
    the same mask sums: see the test's docstring for why.
    """
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    generator = torch.Generator().manual_seed(1)
    batches = []
    for it in range(ITERS):
        boxes = torch.tensor([[8., 6., 40., 30.], [30., 28., 60., 62.]])
        boxes[:, 0::2] += 2 * it
        inputs, samples = [], []
        for _ in range(BATCH):
            sample = DetDataSample(metainfo=dict(
                img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                scale_factor=(1.0, 1.0)))
            sample.gt_instances = InstanceData(
                bboxes=boxes.clone(), labels=torch.tensor([0, 2]))
            inputs.append(torch.randint(0, 4, (3, SIZE, SIZE),
                                        generator=generator,
                                        dtype=torch.uint8))
            samples.append(sample)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def shard(batch: dict, rank: int, world_size: int) -> dict:
    """Rank ``rank``'s contiguous share of ``batch``."""
    per_rank = BATCH // world_size
    part = slice(rank * per_rank, (rank + 1) * per_rank)
    return {key: value[part] for key, value in batch.items()}


def train(model: torch.nn.Module, distiller: Distiller, rank: int = 0,
          world_size: int = 1) -> Dict[str, torch.Tensor]:
    """Train ``model`` (the distiller or its DDP wrapper) ``ITERS`` steps
    of SGD with momentum; return the trainable parameters."""
    optim = OptimWrapper(torch.optim.SGD(
        distiller.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4))
    for batch in make_batches():
        model.train_step(shard(batch, rank, world_size), optim)
    return {name: param.detach().clone()
            for name, param in distiller.named_parameters()}


def main(teacher_ckpt: str, out_dir: str) -> None:
    from mmengine.model import MMDistributedDataParallel
    dist.init_process_group('gloo')
    rank, world_size = dist.get_rank(), dist.get_world_size()
    init_default_scope('mmdet')
    distiller = build_distiller(teacher_ckpt)
    ddp = MMDistributedDataParallel(module=distiller,
                                    find_unused_parameters=False)
    params = train(ddp, distiller, rank, world_size)
    torch.save(params, os.path.join(out_dir, f'ddp_rank{rank}.pth'))
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
