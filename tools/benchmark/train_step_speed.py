"""Time training steps of a teacher, its student, and the student distilled.

Measures the cost of distillation itself, without data loading: every
configuration runs ``--iters`` training steps (forward, backward, optimizer
step) on one fixed synthetic batch, after ``--warmup`` untimed steps. The
models are the demo's GFL detectors (``tools/demo/digits_kd_demo.py``):
teacher ResNet-18 at base width 32 with FPN/head 64, student at base width
16 with FPN/head 32. The teacher's weights are random (its speed does not
depend on them); they are saved to a temporary checkpoint, as a user's
teacher would be.

Rows:

- ``teacher``, ``student``: the plain mmdet models, trained alone.
- ``student + KD (neck)``: FPN feature imitation; the frozen teacher stops
  after its neck.
- ``student + KD (head)``: the same term reading the teacher's last head
  conv, so the frozen teacher runs its whole head: the price of reading
  deeper, i.e. what the early exit saves.

Usage::

    python tools/benchmark/train_step_speed.py [--iters 20] [--warmup 3]
        [--batch-size 16] [--size 128] [--device cpu|cuda] [--amp]
        [--threads N] [--out results.json]
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'tools', 'demo'))

from digits_kd_demo import distill_model, gfl_model  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

from mmkd.distillers.probe import make_probe_batch  # noqa: E402


def synthetic_batch(model: nn.Module, batch_size: int, size: int,
                    device: torch.device) -> Dict[str, object]:
    """A preprocessed batch: random images, three gt boxes an image."""
    from mmengine.structures import InstanceData
    inputs, samples = make_probe_batch(model, (size, size), batch_size,
                                       device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(inputs.shape, generator=generator).to(device)
    for sample in samples:
        xy = torch.rand(3, 2, generator=generator) * size * 0.6
        wh = (torch.rand(3, 2, generator=generator) * 0.3 + 0.1) * size
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], dim=1),
            labels=torch.randint(0, 10, (3, ), generator=generator),
        ).to(device)
    return dict(inputs=inputs, data_samples=samples)


def time_steps(model: nn.Module, batch: Dict[str, object], iters: int,
               warmup: int, amp: bool, device: torch.device) -> List[float]:
    """Seconds per training step, one entry a timed step."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)
    wrapper = AmpOptimWrapper(optimizer=optimizer) if amp else \
        OptimWrapper(optimizer=optimizer)
    model.train()
    sync: Callable[[], None] = torch.cuda.synchronize \
        if device.type == 'cuda' else (lambda: None)
    seconds = []
    for step in range(warmup + iters):
        sync()
        start = time.perf_counter()
        with wrapper.optim_context(model):
            losses = model(batch['inputs'], batch['data_samples'],
                           mode='loss')
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)
        sync()
        if step >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def build_configurations(teacher: dict,
                         teacher_ckpt: str) -> Dict[str, dict]:
    student = gfl_model(16, 32)
    kd_neck = distill_model(student, teacher, teacher_ckpt)
    kd_head = distill_model(student, teacher, teacher_ckpt)
    # the last conv of the shared head tower: 3 FPN levels, 32 -> 64 ch.
    kd_head['distill'] = dict(fpn=dict(
        type='FeatureImitation', student='bbox_head.cls_convs.1',
        teacher='bbox_head.cls_convs.1', loss_weight=1.0))
    return {'teacher': teacher, 'student': student,
            'student + KD (neck)': kd_neck, 'student + KD (head)': kd_head}


def run(iters: int, warmup: int, batch_size: int, size: int, device: str,
        amp: bool) -> Dict[str, Dict[str, float]]:
    """Time every configuration; returns mean/median s/iter and params."""
    init_default_scope('mmdet')
    device = torch.device(device)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        teacher, teacher_ckpt = gfl_model(32, 64), osp.join(tmp, 'teacher.pth')
        torch.manual_seed(0)
        torch.save(dict(state_dict=MODELS.build(teacher).state_dict()),
                   teacher_ckpt)
        for name, cfg in build_configurations(teacher, teacher_ckpt).items():
            torch.manual_seed(0)
            model = MODELS.build(cfg).to(device)
            student = getattr(model, 'student', model)
            batch = synthetic_batch(student, batch_size, size, device)
            seconds = time_steps(model, batch, iters, warmup, amp, device)
            results[name] = dict(
                trainable_params=sum(p.numel() for p in model.parameters()
                                     if p.requires_grad),
                mean_s=statistics.mean(seconds),
                median_s=statistics.median(seconds))
            print(f'{name}: {results[name]["mean_s"]:.3f} s/iter',
                  flush=True)
    return results


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    lines = [f'{"configuration":<22}{"trainable":>11}{"mean s/it":>11}'
             f'{"median s/it":>13}']
    for name, r in results.items():
        lines.append(f'{name:<22}{r["trainable_params"] / 1e6:>10.2f}M'
                     f'{r["mean_s"]:>11.3f}{r["median_s"]:>13.3f}')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--size', type=int, default=128,
                        help='square input side, a multiple of 32')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (MMEngine AmpOptimWrapper)')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch decides)')
    parser.add_argument('--out', help='also write the results as JSON')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters must be >= 1 and --warmup >= 0')
    if args.size % 32:
        parser.error('--size must be a multiple of 32 (the FPN strides)')
    if args.amp and not args.device.startswith('cuda'):
        parser.error('--amp needs --device cuda (MMEngine\'s '
                     'AmpOptimWrapper runs on GPUs)')
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.iters, args.warmup, args.batch_size, args.size,
                  args.device, args.amp)
    print(f'\nbatch {args.batch_size} x 3 x {args.size} x {args.size}, '
          f'{args.device}{" AMP" if args.amp else ""}, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}, '
          f'{args.iters} timed steps after {args.warmup} warm-up steps')
    print(format_table(results))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
