"""The mmkd demo: distil a GFL detector on generated handwritten digits.

It generates a small COCO-format set (``digits_coco.py``), trains a teacher
(ResNet-18 at base width 32, FPN/head 64), then the student (base width 16,
FPN/head 32) alone and with FPN feature imitation (one 1×1 adaptor per
level, 32 -> 64 channels, MSE, weight 1) under the same schedule and seed,
evaluates all three with COCO mAP (pycocotools) and prints a table.

Usage::

    python tools/demo/digits_kd_demo.py [--out-dir work_dirs/demo]
        [--teacher-iters 800] [--student-iters 550] [--seed 0]

The schedules are sized to finish within 20 minutes on the slowest 2-core
development machine seen (teacher 0.64 s/iter, student 0.36, student + KD
0.51, data loading included; 5x faster on others).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import mmkd  # noqa: E402,F401
from digits_coco import CLASSES, generate  # noqa: E402
from progress import ProgressHook  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def gfl_model(base_channels: int, width: int) -> dict:
    """An mmdet GFL detector (ATSS, QFL + DFL + GIoU) on strides 8/16/32."""
    return dict(
        type='GFL',
        data_preprocessor=dict(
            type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
            pad_size_divisor=32),
        backbone=dict(
            type='ResNet', depth=18, base_channels=base_channels,
            num_stages=4, out_indices=(1, 2, 3), frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
            style='pytorch', init_cfg=None),
        neck=dict(type='FPN', in_channels=[base_channels * m
                                           for m in (2, 4, 8)],
                  out_channels=width, num_outs=3),
        bbox_head=dict(
            type='GFLHead', num_classes=len(CLASSES), in_channels=width,
            stacked_convs=2, feat_channels=width,
            norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
            anchor_generator=dict(
                type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                scales_per_octave=1, strides=[8, 16, 32]),
            loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True,
                          beta=2.0, loss_weight=1.0),
            loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
            reg_max=16,
            loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
        train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9),
                       allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.6),
                      max_per_img=100))


def runner_config(model: dict, data_root: str, work_dir: str, iters: int,
                  seed: int, batch_size: int = 16) -> Config:
    """A complete MMEngine/mmdet config for the digits data."""
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='PackDetInputs'),
    ]
    metainfo = dict(classes=CLASSES)

    def dataset(split: str, test_mode: bool) -> dict:
        return dict(type='CocoDataset', data_root=data_root,
                    ann_file=f'{split}.json',
                    data_prefix=dict(img=f'{split}/'),
                    metainfo=metainfo, pipeline=pipeline, test_mode=test_mode,
                    filter_cfg=None if test_mode else dict(
                        filter_empty_gt=True))

    warmup = min(100, max(iters // 10, 1))
    return Config(dict(
        default_scope='mmdet',
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=batch_size, num_workers=1, persistent_workers=True,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dataset('train', False)),
        val_dataloader=dict(
            batch_size=16, num_workers=1, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset('val', True)),
        val_evaluator=dict(type='CocoMetric',
                           ann_file=osp.join(data_root, 'val.json'),
                           metric='bbox'),
        # evaluated once after training, outside the timed part
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters,
                       val_begin=iters + 1, val_interval=iters + 1),
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
            clip_grad=dict(max_norm=10)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.01, by_epoch=False,
                 begin=0, end=warmup),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup,
                 end=iters, T_max=iters - warmup),
        ],
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=100),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', interval=iters,
                            by_epoch=False, max_keep_ckpts=1),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        env_cfg=dict(cudnn_benchmark=False,
                     dist_cfg=dict(backend='gloo')),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=seed),
        log_level='WARNING',
    ))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def train_and_eval(cfg: Config, student_only: bool = True) -> Dict:
    """Train, then evaluate; returns params, AP, AP50, train seconds."""
    runner = Runner.from_cfg(cfg)
    runner.register_hook(ProgressHook(osp.basename(cfg.work_dir)))
    model = runner.model
    deployed = getattr(model, 'student', model) if student_only else model
    start = time.time()
    runner.train()
    train_time = time.time() - start
    metrics = runner.val()
    if 'coco/bbox_mAP' not in metrics:
        # mmdet's CocoMetric returns nothing when no box clears score_thr
        print('no detections on the val set: AP = 0', flush=True)
    return dict(params=count_params(deployed),
                AP=metrics.get('coco/bbox_mAP', 0.0),
                AP50=metrics.get('coco/bbox_mAP_50', 0.0),
                train_s=train_time,
                checkpoint=osp.join(cfg.work_dir,
                                    f'iter_{cfg.train_cfg.max_iters}.pth'))


def distill_model(student: dict, teacher: dict, teacher_ckpt: str) -> dict:
    return dict(
        type='mmkd.Distiller',
        student=student,
        teacher=dict(config=dict(default_scope='mmdet', model=teacher),
                     checkpoint=teacher_ckpt),
        distill=dict(fpn=dict(type='FeatureImitation', student='neck',
                              teacher='neck', loss_weight=1.0)),
        probe_size=(128, 128))


def run(out_dir: str, teacher_iters: int, student_iters: int, seed: int,
        num_train: int, num_val: int,
        teacher_ckpt: Optional[str] = None) -> Dict[str, Dict]:
    data_root = osp.join(out_dir, 'data')
    t0 = time.time()
    if not osp.isfile(osp.join(data_root, 'val.json')):
        generate(data_root, num_train, num_val, seed=0)
    print(f'data ready in {time.time() - t0:.0f} s: {data_root}', flush=True)
    teacher, student = gfl_model(32, 64), gfl_model(16, 32)
    results = {}
    if teacher_ckpt is None:
        print(f'training the teacher ({teacher_iters} iters)...', flush=True)
        results['teacher'] = train_and_eval(runner_config(
            teacher, data_root, osp.join(out_dir, 'teacher'),
            teacher_iters, seed))
        teacher_ckpt = results['teacher']['checkpoint']
    print(f'training the student alone ({student_iters} iters)...',
          flush=True)
    results['student'] = train_and_eval(runner_config(
        student, data_root, osp.join(out_dir, 'student'), student_iters,
        seed))
    print('training the student with FPN feature imitation...', flush=True)
    results['student + KD'] = train_and_eval(runner_config(
        distill_model(student, teacher, teacher_ckpt), data_root,
        osp.join(out_dir, 'student_kd'), student_iters, seed))
    return results


def format_table(results: Dict[str, Dict]) -> str:
    lines = [f'{"model":<14}{"params":>10}{"AP":>8}{"AP50":>8}'
             f'{"train time":>12}']
    for name, r in results.items():
        lines.append(f'{name:<14}{r["params"] / 1e6:>9.2f}M{r["AP"]:>8.3f}'
                     f'{r["AP50"]:>8.3f}{r["train_s"]:>11.0f}s')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='work_dirs/demo')
    parser.add_argument('--teacher-iters', type=int, default=800)
    parser.add_argument('--student-iters', type=int, default=550)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=300)
    parser.add_argument('--teacher-checkpoint',
                        help='reuse a trained teacher instead of training')
    args = parser.parse_args()
    start = time.time()
    results = run(args.out_dir, args.teacher_iters, args.student_iters,
                  args.seed, args.num_train, args.num_val,
                  args.teacher_checkpoint)
    table = format_table(results)
    print('\n' + table)
    print(f'\ntotal time {time.time() - start:.0f} s')
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
