"""One rank of the adversarial DDP test: run by torchrun from
test_adversarial_ddp.py.

Wraps a Distiller with a holistic adversarial term in
``mmkd.AdversarialDistillerDDP`` on CPU (gloo), find_unused_parameters=False,
rank 1's discriminator perturbed before wrapping (the wrapper broadcasts
rank 0's), two steps on rank-specific batches; saves what the test
compares.
"""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from conftest import tiny_pspnet  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import MODEL_WRAPPERS  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

from mmkd import Distiller  # noqa: E402

SIZE = 32


def batch(generator):
    from mmseg.structures import SegDataSample
    data = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(
            img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
            pad_shape=(SIZE, SIZE)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, 4, (1, SIZE, SIZE), generator=generator))
        image = torch.randint(0, 4, (3, SIZE, SIZE), generator=generator,
                              dtype=torch.uint8)
        data.append(dict(inputs=image, data_samples=sample))
    return pseudo_collate(data)


def main(teacher_ckpt: str, out_dir: str) -> None:
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = Distiller(
        student=tiny_pspnet(),
        teacher=dict(config=dict(default_scope='mmseg',
                                 model=tiny_pspnet(16, 32)),
                     checkpoint=teacher_ckpt),
        distill=dict(
            hint=dict(type='FeatureImitation',
                      student='decode_head.bottleneck',
                      teacher='decode_head.bottleneck'),
            holistic=dict(type='HolisticAdversarialKD',
                          student='decode_head.conv_seg',
                          teacher='decode_head.conv_seg',
                          discriminator=dict(type='ScoreMapDiscriminator',
                                             widths=(4, 8)))),
        probe_size=(SIZE, SIZE))
    disc = model.distill_terms.holistic.discriminator
    initial = {k: v.clone() for k, v in disc.state_dict().items()}
    if rank == 1:
        with torch.no_grad():
            for p in disc.parameters():
                p.add_(1.0)
    ddp = MODEL_WRAPPERS.build(dict(
        type='mmkd.AdversarialDistillerDDP', module=model,
        broadcast_buffers=False, find_unused_parameters=False))
    wrappers = build_optim_wrapper(ddp, dict(
        constructor='mmkd.AdversarialOptimWrapperConstructor',
        student=dict(optimizer=dict(type='SGD', lr=0.01)),
        discriminator=dict(optimizer=dict(type='SGD', lr=0.1))))
    generator = torch.Generator().manual_seed(100 + rank)  # other data
    logs = [ddp.train_step(batch(generator), wrappers) for _ in range(2)]
    # parameters only: BN statistics differ per rank (broadcast_buffers off)
    torch.save(dict(student=dict(model.student.named_parameters()),
                    adaptor=dict(model.distill_terms.hint.named_parameters()),
                    discriminator=disc.state_dict(), initial=initial,
                    teacher=model.teacher.state_dict(),
                    loss=[float(log['loss_discriminator_holistic'])
                          for log in logs]),
               os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
