"""Seeded accuracy benchmark of distillation methods on the digits sets.

For each method of the manifest (``METHODS``: a distill config under
``configs/bench/``), the student alone and the student distilled by the
method train under the same schedule and the same seeds; the table reports
mean ± std over seeds, the gain, and the fraction of the teacher-student
gap it closes, ``(distilled - student) / (teacher - student)``.

- Detection: the demo's COCO-format digit scenes
  (``tools/demo/digits_coco.py``), GFL teacher ResNet-18 base 32 / student
  base 16 (``configs/bench/_base_/``), COCO AP (pycocotools).
- Segmentation: the same scenes labelled per pixel
  (``tools/demo/digits_seg.py``, 11 classes with the background), FCN on
  a dilated ResNetV1c-18 base 32 / 16, read by mmseg's ``BaseSegDataset``
  and scored by its ``IoUMetric`` (mIoU, %).

Every run (teachers, students alone, distilled students) is cached under
``--work-dir`` by a hash of its complete runner config, so a re-run reuses
teachers and shared student-alone runs and resumes an interrupted
benchmark; its small record (metrics, CPU-seconds, config hash, seed,
loss curves downsampled) also lands in ``--records``
(``tools/benchmark/records/runs/``, committed), so a benchmark interrupted
on one machine resumes on another without training its finished runs
again (only a teacher whose checkpoint a remaining run reads). The runner settings (optimizer, schedule, hooks) are the demo's
(``tools/demo/digits_kd_demo.py``).

Outputs in ``--out`` (base name ``--name``, default ``benchmarks``):
``benchmarks.md`` (table, command, machine, date),
``benchmarks.json`` (one row per method), ``benchmarks_gain.png`` (gain per
method with seed error bars) and ``benchmarks_loss.png`` (loss curves of
the student alone vs distilled, first seed).

Rows with named teachers (``model.teachers``: several teachers, a teacher
at another input size, an EMA teacher of the student) take each named
teacher from the suite the manifest maps it to; ``--prepare-only`` trains
the teachers and students alone the chosen rows need, and nothing else.

Usage::

    python tools/benchmark/accuracy.py [--methods fgfi,seg:pixel]
        [--seeds 0,1,2] [--quick] [--out docs] [--work-dir work_dirs/bench]
        [--prepare-only]
"""
import argparse
import copy
import datetime
import glob
import hashlib
import importlib
import json
import os
import os.path as osp
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'tools', 'demo'))

import mmkd  # noqa: E402,F401
from digits_coco import generate as generate_det  # noqa: E402
from digits_kd_demo import runner_config  # noqa: E402
from digits_seg import CLASSES as SEG_CLASSES  # noqa: E402
from digits_seg import LABEL_VERSION as SEG_LABEL_VERSION  # noqa: E402
from digits_seg import PALETTE  # noqa: E402
from digits_seg import generate as generate_seg  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmkd.optim import uses_adversarial_constructor  # noqa: E402
from mmkd.slots import TRAINABLE_ROLES  # noqa: E402
from progress import ProgressHook  # noqa: E402

BENCH = osp.join(REPO, 'configs', 'bench')

# suite -> task ('det' or 'seg'), metric keys, student and teacher model
# configs. Suites of one task share its data and schedule; a student config
# shared by two suites trains once (runs are cached by their config).
SUITES = {
    'det': dict(task='det', metric='AP', secondary='AP50',
                student=osp.join(BENCH, '_base_', 'digits_gfl_r18w16.py'),
                teacher=osp.join(BENCH, '_base_', 'digits_gfl_r18w32.py')),
    # the 'det' student with a teacher of its head width (CrossKD runs the
    # student's head features through the teacher's head)
    'det_samehead': dict(
        task='det', metric='AP', secondary='AP50',
        student=osp.join(BENCH, '_base_', 'digits_gfl_r18w16.py'),
        teacher=osp.join(BENCH, '_base_', 'digits_gfl_r18w32-head32.py')),
    # a two-stage pair (Faster R-CNN, the widths of the 'det' pair) for
    # the RPN and R-CNN terms of Chen et al. (2017)
    'det_rcnn': dict(
        task='det', metric='AP', secondary='AP50',
        student=osp.join(BENCH, '_base_', 'digits_faster-rcnn_r18w16.py'),
        teacher=osp.join(BENCH, '_base_', 'digits_faster-rcnn_r18w32.py')),
    # a teacher of another head family (ATSS) at the 'det' teacher's
    # widths, FPN levels and priors: alone, and beside the 'det' GFL
    # teacher in the multi-teacher rows
    'det_atss': dict(
        task='det', metric='AP', secondary='AP50',
        student=osp.join(BENCH, '_base_', 'digits_gfl_r18w16.py'),
        teacher=osp.join(BENCH, '_base_', 'digits_atss_r18w32.py')),
    # the 'det' teacher's model trained and evaluated on the images
    # resized 2x (teacher_scale: 256x256, boxes alike); its student, like
    # every student, at 128x128
    'det_2x': dict(
        task='det', metric='AP', secondary='AP50',
        student=osp.join(BENCH, '_base_', 'digits_gfl_r18w16.py'),
        teacher=osp.join(BENCH, '_base_', 'digits_gfl_r18w32.py'),
        teacher_scale=2),
    'seg': dict(task='seg', metric='mIoU', secondary='mAcc',
                student=osp.join(BENCH, '_base_', 'digits_fcn_r18w16-d8.py'),
                teacher=osp.join(BENCH, '_base_',
                                 'digits_fcn_r18w32-d8.py')),
}

# the row of a suite's student alone given the CPU time of its costliest
# distilled row (``--compute-matched``)
COMPUTE_MATCHED = 'student_compute_matched'

# The manifest: (suite, method) -> distill config, or, for a config with
# named teachers (``model.teachers``), ``dict(config=..., teachers={slot:
# suite})``: each named frozen teacher's checkpoint is that suite's
# trained teacher. Slots without a config (an EMA teacher of the student)
# need none; a row whose config names no external teacher has none.
METHODS = {
    ('det', 'fgfi'):
    'det/fgfi_neck_digits_gfl_r18w32_r18w16.py',
    ('seg', 'pixel'):
    'seg/pixel_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('det', 'feature_imitation'):
    'det/feature_imitation_neck_digits_gfl_r18w32_r18w16.py',
    ('seg', 'feature_imitation'):
    'seg/feature_imitation_head_digits_fcn_r18w32_r18w16-d8.py',
    ('det', 'ld'):
    'det/ld_head_digits_gfl_r18w32_r18w16.py',
    ('det', 'bounded_regression'):
    'det/bounded_regression_head_digits_gfl_r18w32_r18w16.py',
    ('det', 'soft_targets'):
    'det/soft_targets_head_digits_gfl_r18w32_r18w16.py',
    ('det', 'bckd'):
    'det/bckd_head_digits_gfl_r18w32_r18w16.py',
    ('det', 'cwd'):
    'det/cwd_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'pkd'):
    'det/pkd_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'fgd'):
    'det/fgd_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'fgd_w0.1'):
    'det/fgd-w0.1_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'fgd_no_attention'):
    'det/fgd-no-attention_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'fgd_fg_only'):
    'det/fgd-fg-only_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'fgd_fg_only_t100'):
    'det/fgd-fg-only-t100_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'mgd'):
    'det/mgd_neck_digits_gfl_r18w32_r18w16.py',
    ('seg', 'cwd'):
    'seg/cwd_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'dist'):
    'seg/dist_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('det', 'mmdet_ld'):
    'det/mmdet_ld_head_digits_gfl_r18w32_r18w16.py',
    ('det', 'mmrazor_cwd'):
    'det/mmrazor_cwd_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'mmrazor_pkd'):
    'det/mmrazor_pkd_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'mmrazor_fpn_imitation'):
    'det/mmrazor_fpn_imitation_neck_digits_gfl_r18w32_r18w16.py',
    ('det_samehead', 'crosskd'):
    'det/crosskd_head_digits_gfl_r18w32-head32_r18w16.py',
    ('det_samehead', 'ld'):
    'det/ld_head_digits_gfl_r18w32-head32_r18w16.py',
    # the reasons rows (issue 22): SKD's pixel weight 10 against the
    # term's default 1; Chen et al.'s bound at margin 0, where it acts
    ('seg', 'pixel_w1'):
    'seg/pixel-w1_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'pixel_t4'):
    'seg/pixel-t4_logits_digits_fcn_r18w32_r18w16-d8.py',
    # the pixel term compared at the labels' resolution, and with a
    # class-balanced mean: the two readings of why it hurts the digits
    ('seg', 'pixel_labels'):
    'seg/pixel-labels_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'pixel_balanced'):
    'seg/pixel-balanced_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('det', 'bounded_regression_m0'):
    'det/bounded_regression-m0_head_digits_gfl_r18w32_r18w16.py',
    ('seg', 'pair'):
    'seg/pair_head_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'adversarial'):
    'seg/adversarial_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'pixel+pair'):
    'seg/pixel-pair_logits-head_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'pixel+pair+adversarial'):
    'seg/pixel-pair-adversarial_logits-head_digits_fcn_r18w32_r18w16-d8.py',
    ('det_rcnn', 'chen2017'):
    'det/chen2017_neck-rpn-roi_digits_faster-rcnn_r18w32_r18w16.py',
    ('det_rcnn', 'feature_imitation'):
    'det/feature_imitation_neck_digits_faster-rcnn_r18w32_r18w16.py',
    ('det_rcnn', 'soft_targets+bounded_regression'):
    'det/soft-targets-bounded-regression_rpn-roi_digits_faster-rcnn_'
    'r18w32_r18w16.py',
    # models with roles: another teacher, several teachers, a teacher at
    # twice the resolution, an EMA of the student (PKD at the neck, as the
    # det row 'pkd')
    ('det_atss', 'pkd'):
    'det/pkd_neck_digits_atss-r18w32_gfl-r18w16.py',
    ('det', 'pkd_ensemble_gfl_atss'): dict(
        config='det/pkd-ensemble_neck_digits_gfl-atss-r18w32_gfl-r18w16.py',
        teachers=dict(gfl='det', atss='det_atss')),
    ('det', 'pkd_progressive_atss_gfl'): dict(
        config='det/pkd-progressive_neck_digits_atss-gfl-r18w32_gfl-'
        'r18w16.py',
        teachers=dict(gfl='det', atss='det_atss')),
    ('det_2x', 'pkd'): dict(
        config='det/pkd_neck_digits_gfl_r18w32-2x-input_r18w16.py',
        teachers=dict(gfl2x='det_2x')),
    ('det', 'pkd_ema'):
    'det/pkd-ema_neck_digits_gfl_r18w16.py',
    ('det', 'pkd_ema_decay0.99'):
    'det/pkd-ema-decay0.99_neck_digits_gfl_r18w16.py',
    # the classic "what to match" terms (issue 20) and logit KD for
    # sigmoid heads
    ('det', 'at'):
    'det/at_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'nst'):
    'det/nst_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'ab'):
    'det/ab_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'fsp'):
    'det/fsp_backbone_digits_gfl_r18w32_r18w16.py',
    ('det', 'rkd'):
    'det/rkd_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'ft'):
    'det/ft_neck_digits_gfl_r18w32_r18w16.py',
    ('det', 'dkd'):
    'det/dkd_head_digits_gfl_r18w32_r18w16.py',
    ('det', 'bckd_ls'):
    'det/bckd-ls_head_digits_gfl_r18w32_r18w16.py',
    ('det', 'ld_ls'):
    'det/ld-ls_head_digits_gfl_r18w32_r18w16.py',
    ('seg', 'at'):
    'seg/at_backbone_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'nst'):
    'seg/nst_head_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'fsp'):
    'seg/fsp_backbone_digits_fcn_r18w32_r18w16-d8.py',
    # born-again generations: dict(config=..., generation=g) distils
    # generation g from generation g - 1 of the same seed (generation 0:
    # the student alone), so the row's teacher is the student's own
    # architecture and no suite teacher is trained for it
    ('det', 'born_again_gen1'): dict(
        config='det/ld-born-again_head_digits_gfl_r18w16_r18w16.py',
        generation=1),
    ('det', 'born_again_gen2'): dict(
        config='det/ld-born-again_head_digits_gfl_r18w16_r18w16.py',
        generation=2),
    # recipes: the strongest single terms combined, each with its own
    # single-method weight (searched on seeds 0-2, reported on 3-4)
    ('det', 'feature_imitation+ld'):
    'det/feature-imitation-ld_neck-head_digits_gfl_r18w32_r18w16.py',
    ('det', 'cwd+ld'):
    'det/cwd-ld_neck-head_digits_gfl_r18w32_r18w16.py',
    ('det', 'feature_imitation+ld+soft_targets'):
    'det/feature-imitation-ld-soft-targets_neck-head_digits_gfl_'
    'r18w32_r18w16.py',
    ('det', 'feature_imitation+ld+dkd'):
    'det/feature-imitation-ld-dkd_neck-head_digits_gfl_r18w32_r18w16.py',
    ('det', 'pkd+ld'):
    'det/pkd-ld_neck-head_digits_gfl_r18w32_r18w16.py',
    ('det', 'feature_imitation_w2+ld'):
    'det/feature-imitation-w2-ld_neck-head_digits_gfl_r18w32_r18w16.py',
    ('seg', 'cwd+dist'):
    'seg/cwd-dist_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'cwd+dist_off_last_third'):
    'seg/cwd-dist-off-last-third_logits_digits_fcn_r18w32_r18w16-d8.py',
    ('seg', 'cwd+dist+pair'):
    'seg/cwd-dist-pair_logits-head_digits_fcn_r18w32_r18w16-d8.py',
    # what tools/recipe.py writes for the suite's teacher and student
    # (configs/bench/README.md gives the command)
    ('det', 'recipe'): 'det/recipe_digits_gfl_r18w32_r18w16.py',
    ('seg', 'recipe'): 'seg/recipe_digits_fcn_r18w32_r18w16-d8.py',
    ('det_rcnn', 'recipe'): 'det/recipe_digits_faster-rcnn_r18w32_r18w16.py',
    # the same recipes with the teacher's records cached per image
    # (cache_outputs=True): the same terms at a lower cost per step
    ('det', 'recipe_cached'): 'det/recipe-cached_digits_gfl_r18w32_r18w16.py',
    ('seg', 'recipe_cached'):
    'seg/recipe-cached_digits_fcn_r18w32_r18w16-d8.py',
    # students that learn together or from themselves (issue 18): no
    # external teacher; the trainable slots (a DML peer, BYOT's auxiliary
    # heads, ONE's branches, NetAug's wide model) train from scratch with
    # the student and the row is the student's metric
    ('det', 'dml_peer_student_arch'):
    'det/dml_head_digits_gfl_r18w16_r18w16.py',
    ('det', 'dml_peer_teacher_arch'):
    'det/dml_head_digits_gfl_r18w16_r18w32.py',
    ('seg', 'dml_peer_student_arch'):
    'seg/dml_logits_digits_fcn_r18w16_r18w16-d8.py',
    ('det', 'byot'): 'det/byot_head_digits_gfl_r18w16.py',
    ('seg', 'byot'): 'seg/byot_logits_digits_fcn_r18w16-d8.py',
    ('det', 'one'): 'det/one_head_digits_gfl_r18w16.py',
    ('seg', 'one'): 'seg/one_logits_digits_fcn_r18w16-d8.py',
    ('det', 'netaug'): 'det/netaug_digits_gfl_r18w16.py',
    ('seg', 'netaug'): 'seg/netaug_digits_fcn_r18w16-d8.py',
}


def method_config(key: Tuple[str, str]) -> str:
    """The path of a manifest row's distill config."""
    value = METHODS[key]
    return osp.join(BENCH, value if isinstance(value, str) else
                    value['config'])


def generation(key: Tuple[str, str]) -> int:
    """The born-again generation a manifest row trains (0: not one)."""
    value = METHODS[key]
    return 0 if isinstance(value, str) else int(value.get('generation', 0))


def teacher_suites(key: Tuple[str, str]) -> Dict[str, str]:
    """``{slot: suite}``: the suite whose teacher fills each named
    teacher of a manifest row (empty for a single-teacher row)."""
    value = METHODS[key]
    return {} if isinstance(value, str) else dict(value.get('teachers', {}))

# Schedules per task: the full benchmark, sized for a shared 2-core CPU
# (about an hour), and the smoke run of the test suite.
SCHEDULES = {
    'full': dict(
        det=dict(teacher_iters=800, student_iters=600, batch_size=16,
                 student_batch_size=8, num_train=2000, num_val=300,
                 num_workers=1),
        seg=dict(teacher_iters=2000, student_iters=600, batch_size=8,
                 student_batch_size=8, num_train=2000, num_val=300,
                 num_workers=1)),
    'quick': dict(
        det=dict(teacher_iters=2, student_iters=2, batch_size=2,
                 student_batch_size=2, num_train=4, num_val=2,
                 num_workers=0),
        seg=dict(teacher_iters=2, student_iters=2, batch_size=2,
                 student_batch_size=2, num_train=4, num_val=2,
                 num_workers=0)),
}


def select_methods(spec: Optional[str]) -> List[Tuple[str, str]]:
    """``'fgfi,seg:pixel'`` -> manifest keys; a bare name selects every
    suite that has the method, ``suite:name`` one suite."""
    if not spec:
        return list(METHODS)
    chosen = []
    for item in (s.strip() for s in spec.split(',') if s.strip()):
        suite, _, name = item.rpartition(':')
        keys = [k for k in METHODS
                if k[1] == name and (not suite or k[0] == suite)]
        if not keys:
            known = ', '.join(f'{t}:{m}' for t, m in METHODS)
            raise ValueError(f'Unknown method {item!r} in --methods; the '
                             f'manifest has {known}.')
        chosen += [k for k in keys if k not in chosen]
    return chosen


def ensure_data(task: str, root: str, num_train: int, num_val: int,
                glyphs: str = 'digits') -> str:
    """Generate the task's data set once under ``root``: the scenes drawn
    with the ``glyphs`` (``'digits'``, or ``'shapes'``: the second set,
    never tuned on)."""
    version = '' if task == 'det' else f'{SEG_LABEL_VERSION}_'
    if glyphs != 'digits':
        version += f'{glyphs}_'
    data_root = osp.join(root, f'data_{task}_{version}{num_train}_{num_val}')
    done = osp.join(data_root, 'DONE')
    if not osp.isfile(done):
        start = time.time()
        (generate_det if task == 'det' else generate_seg)(
            data_root, num_train, num_val, seed=0, glyph_set=glyphs)
        open(done, 'w').close()
        print(f'{task} data: {num_train} train / {num_val} val images in '
              f'{time.time() - start:.0f} s ({data_root})', flush=True)
    return data_root


def seg_runner_config(model: dict, data_root: str, work_dir: str,
                      iters: int, seed: int, batch_size: int) -> Config:
    """The demo's runner settings on the segmentation digits: mmseg's
    ``BaseSegDataset`` (PNG label maps) and ``IoUMetric``."""
    cfg = runner_config(model, data_root, work_dir, iters, seed, batch_size)
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', reduce_zero_label=False),
                dict(type='PackSegInputs')]

    def dataset(split: str) -> dict:
        return dict(type='BaseSegDataset', data_root=data_root,
                    data_prefix=dict(img_path=f'img_dir/{split}',
                                     seg_map_path=f'ann_dir/{split}'),
                    img_suffix='.png', seg_map_suffix='.png',
                    metainfo=dict(classes=SEG_CLASSES, palette=PALETTE),
                    reduce_zero_label=False, pipeline=pipeline)

    cfg.default_scope = 'mmseg'
    cfg.train_dataloader.dataset = dataset('train')
    cfg.val_dataloader.dataset = dataset('val')
    cfg.val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    return cfg


def task_runner_config(task: str, model: dict, data_root: str, iters: int,
                       seed: int, batch_size: int,
                       num_workers: int) -> Config:
    build = runner_config if task == 'det' else seg_runner_config
    cfg = build(model, data_root, '', iters, seed, batch_size)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.num_workers = num_workers
        loader.persistent_workers = num_workers > 0
    return cfg


def config_hash(cfg: Config, cache: Optional[str] = None) -> str:
    """A short hash of everything that defines a run but its folder and
    where it runs: the paths under ``cache`` (the data, a teacher's
    checkpoint) and under the repository count relative to them, so an
    equal run in another checkout or work dir has the same hash."""
    content = {k: v for k, v in cfg.to_dict().items() if k != 'work_dir'}
    text = json.dumps(content, sort_keys=True, default=str)
    roots = [(REPO, '<repo>')]
    if cache:
        roots.insert(0, (cache, '<work-dir>'))
    for root, token in roots:
        for form in dict.fromkeys((osp.abspath(root), osp.normpath(root))):
            if form not in ('', '.', '/'):
                text = re.sub(r'(?<=")' + re.escape(form) + r'(?=[/"])',
                              token, text)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def read_metrics(task: str, metrics: Dict[str, float]) -> Dict[str, float]:
    """The task's main and secondary metric from a ``runner.val()``."""
    if task == 'det':
        # mmdet's CocoMetric returns nothing when no box clears score_thr
        return dict(AP=metrics.get('coco/bbox_mAP', 0.0),
                    AP50=metrics.get('coco/bbox_mAP_50', 0.0))
    return dict(mIoU=metrics['mIoU'], mAcc=metrics['mAcc'])


#: where each run's small result record lands in the repository
RECORDS = osp.join(REPO, 'tools', 'benchmark', 'records', 'runs')
#: at most this many points of each loss curve are kept in a record
RECORD_CURVE_POINTS = 200


def downsample(values: List[float], points: int = RECORD_CURVE_POINTS
               ) -> List[float]:
    """``values`` as at most ``points`` means of consecutive equal
    buckets (the shape of a loss curve, at a record's size)."""
    if len(values) <= points:
        return list(values)
    size = -(-len(values) // points)
    return [statistics.fmean(values[i:i + size])
            for i in range(0, len(values), size)]


def record_path(records: str, task: str, name: str, key: str) -> str:
    return osp.join(records, f'{task}_{name}_{key}.json')


def utc_date() -> str:
    """The date a record carries: ``YYYY-MM-DD HH:MM UTC``."""
    return time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())


def emit_json_line(record: Dict, path: Optional[str]) -> None:
    """Print ``record`` as one JSON line and append it to ``path`` (the
    JSON-lines record of a stats tool; ``None``: print only)."""
    line = json.dumps(record)
    print(line)
    if path:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'a') as f:
            f.write(line + '\n')


def write_record(records: str, task: str, name: str, key: str, seed: int,
                 result: Dict) -> None:
    """The run's small record in ``records``: metrics, cost, config hash,
    seed and the loss curves downsampled, never the checkpoint."""
    record = dict(result, task=task, name=name, config_hash=key, seed=seed,
                  losses={k: downsample(v)
                          for k, v in result.get('losses', {}).items()},
                  machine=machine(),
                  date=utc_date())
    record.pop('checkpoint', None)
    os.makedirs(records, exist_ok=True)
    path = record_path(records, task, name, key)
    with open(path + '.tmp', 'w') as f:
        json.dump(record, f, indent=1)
    os.replace(path + '.tmp', path)


def run_cached(task: str, name: str, cfg: Config, cache: str,
               progress_interval: int, records: Optional[str] = None,
               need_checkpoint: bool = False) -> Dict:
    """Train and evaluate ``cfg``, or load the result of an equal run.

    Args:
        task: ``'det'`` or ``'seg'``.
        name: the run's name (``student_seed0``, ``fgfi_seed2``...).
        cfg: its runner config; ``work_dir`` is set here, to
            ``cache/{task}_{name}_{hash of the config}``.
        cache: the folder of cached runs (checkpoints and results).
        progress_interval: print progress every so many iterations.
        records: a folder of run records (:func:`write_record`, kept in
            the repository): a run recorded there is not trained again,
            on any machine, unless its checkpoint is needed and absent;
            every run trained or found in ``cache`` is recorded there.
            ``None``: no records.
        need_checkpoint: the caller reads the run's checkpoint (a teacher,
            a born-again generation), so a record alone does not do.

    Returns:
        The metrics, ``s_per_iter``, ``cpu_seconds``, ``iters``, ``losses``
        and ``checkpoint`` (its path; absent on disk for a run loaded from
        its record).
    """
    key, cfg.work_dir, result_file, record = run_paths(task, name, cfg,
                                                       cache, records)
    checkpoint = osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    if osp.isfile(result_file) and (not need_checkpoint or
                                    osp.isfile(checkpoint)):
        with open(result_file) as f:
            result = json.load(f)
        print(f'[{task}] {name}: cached ({result_file})', flush=True)
        # where it lies now (the cache may be another checkout's)
        result['checkpoint'] = checkpoint
        if record and not osp.isfile(record):
            write_record(records, task, name, key, cfg.randomness.seed,
                         result)
        return result
    if record and osp.isfile(record) and not need_checkpoint:
        with open(record) as f:
            result = json.load(f)
        print(f'[{task}] {name}: recorded ({record})', flush=True)
        return dict(result, checkpoint=checkpoint)
    from mmengine.runner import Runner
    iters = cfg.train_cfg.max_iters
    print(f'[{task}] {name}: training {iters} iterations...', flush=True)
    runner = Runner.from_cfg(cfg)
    progress = ProgressHook(f'[{task}] {name}', progress_interval)
    runner.register_hook(progress)
    cpu_start = time.process_time()
    runner.train()
    cpu_seconds = time.process_time() - cpu_start
    metrics = read_metrics(task, runner.val())
    result = dict(metrics, s_per_iter=progress.seconds / iters,
                  cpu_seconds=cpu_seconds, iters=iters,
                  losses=progress.losses, checkpoint=checkpoint)
    with open(result_file, 'w') as f:
        json.dump(result, f)
    if record:
        write_record(records, task, name, key, cfg.randomness.seed, result)
    print(f'[{task}] {name}: ' + ', '.join(
        f'{k} {metrics[k]:.4g}' for k in metrics) +
        f', {result["s_per_iter"]:.3f} s/iter', flush=True)
    return result


def run_paths(task: str, name: str, cfg: Config, cache: str,
              records: Optional[str] = None
              ) -> Tuple[str, str, str, Optional[str]]:
    """``(config hash, work dir, result file, record file or None)`` of
    ``cfg``'s run in ``cache`` (:func:`run_cached`)."""
    key = config_hash(cfg, cache)
    work_dir = osp.join(cache, f'{task}_{name}_{key}')
    return (key, work_dir, osp.join(work_dir, 'result.json'),
            recorded_run(records, task, name, key) if records else None)


def recorded_run(records: str, task: str, name: str, key: str) -> str:
    """The record of the run with config hash ``key``: the one under
    ``name`` or, if none, one recorded under another name (a student alone
    at 6000 iterations is the same run whether a suite's students or a
    compute-matched row named it). A run not recorded yet gets the path
    under ``name``."""
    own = record_path(records, task, name, key)
    if osp.isfile(own):
        return own
    others = sorted(glob.glob(osp.join(glob.escape(records),
                                       f'{task}_*_{key}.json')))
    return others[0] if others else own


def is_cached(task: str, name: str, cfg: Config, cache: str,
              records: Optional[str] = None) -> bool:
    """Whether :func:`run_cached` would load ``cfg``'s run (from ``cache``
    or its record) instead of training it."""
    _, _, result_file, record = run_paths(task, name, cfg, cache, records)
    return osp.isfile(result_file) or bool(record and osp.isfile(record))


def external_teachers(method_config: str) -> Optional[List[str]]:
    """The named teachers a distill config loads from a checkpoint (the
    slots of ``model.teachers`` with a ``config``), or ``None`` for a config
    with one teacher (``model.teacher``, or a peer model's
    ``teacher_ckpt``). An EMA teacher of the student is no such slot, nor
    is a trainable one (a DML peer trains from scratch beside the
    student)."""
    model = Config.fromfile(method_config,
                            import_custom_modules=False).model
    if 'teachers' not in model:
        return None
    return [name for name, slot in model.teachers.items()
            if 'config' in slot and slot.get('role') not in TRAINABLE_ROLES]


def distill_model(method_config: str, teacher_ckpt: Optional[str] = None,
                  teachers: Optional[Dict[str, str]] = None) -> dict:
    """The method's distill config with the trained teacher filled in
    (``model.teacher.checkpoint`` of an mmkd distiller, or
    ``model.teacher_ckpt`` of a peer model such as mmdet's
    ``KnowledgeDistillationSingleStageDetector``); for a config with named
    teachers, ``teachers`` maps every slot that loads one
    (:func:`external_teachers`) to its checkpoint."""
    cfg = Config.fromfile(method_config)
    slots = external_teachers(method_config)
    if slots is None:
        key = 'model.teacher_ckpt' if 'teacher_ckpt' in cfg.model else \
            'model.teacher.checkpoint'
        cfg.merge_from_dict({key: teacher_ckpt})
        return cfg.model.to_dict()
    teachers = dict(teachers or {})
    if set(teachers) != set(slots):
        raise ValueError(
            f'{osp.relpath(method_config, REPO)} loads the teachers '
            f'{sorted(slots)} from checkpoints, but the harness was given '
            f'checkpoints for {sorted(teachers)}: map each of its slots to '
            f'a suite in METHODS (dict(config=..., teachers={{slot: '
            f'suite}})).')
    cfg.merge_from_dict({f'model.teachers.{name}.checkpoint': path
                         for name, path in teachers.items()})
    return cfg.model.to_dict()


def scale_inputs(cfg: Config, scale: float) -> Config:
    """``cfg`` with its train and val images (and their boxes) resized
    ``scale``x: every ``Resize`` of both pipelines gets a ``scale``-times
    larger target. The metric reads boxes in the original image's
    coordinates, as mmdet rescales predictions back."""
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        steps = loader.dataset.pipeline
        resizes = [i for i, step in enumerate(steps)
                   if step['type'] == 'Resize']
        if not resizes:
            raise ValueError('teacher_scale needs a Resize in the pipeline')
        # new step dicts: the train and val pipelines may be one object
        loader.dataset.pipeline = [
            dict(step, scale=tuple(int(round(side * scale))
                                   for side in step['scale']))
            if i in resizes else step for i, step in enumerate(steps)]
    return cfg


# The folder holding a peer's package (MMRazor, whose own algorithms some
# rows run), put on sys.path for those rows when it is not installed.
PEERS_PATH = osp.join(osp.dirname(REPO), 'shared', 'peers',
                      'mmrazor-90c7af1')


def peer_import_error(method_config: str,
                      peers_path: str = PEERS_PATH) -> Optional[str]:
    """Why the modules a method config imports (its ``custom_imports``:
    ``mmkd``, or a peer's package such as ``mmrazor.models``) cannot be
    imported, or ``None`` when they can. ``peers_path`` joins ``sys.path``
    when a module is not found without it."""
    cfg = Config.fromfile(method_config, import_custom_modules=False)
    modules = cfg.get('custom_imports', {}).get('imports', [])
    for module in [modules] if isinstance(modules, str) else modules:
        try:
            importlib.import_module(module)
            continue
        except Exception:  # not found, or a failed version check
            folder = osp.abspath(peers_path)
            if osp.isdir(folder) and folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            importlib.import_module(module)
        except Exception as e:
            return (f'{module} is not importable ({type(e).__name__}: {e}); '
                    f'--peers-path names the folder holding its package '
                    f'(now {peers_path})')
    return None


def split_peer_rows(methods: List[Tuple[str, str]], peers_path: str
                    ) -> Tuple[List[Tuple[str, str]], Dict[str, str]]:
    """The methods that can run here, and ``{'suite:method': reason}`` for
    the peer rows skipped because their package is not importable."""
    runnable, skipped = [], {}
    for key in methods:
        reason = peer_import_error(method_config(key), peers_path)
        if reason is None:
            runnable.append(key)
        else:
            skipped[':'.join(key)] = reason
            print(f'[{key[0]}] {key[1]}: skipped, {reason}', flush=True)
    return runnable, skipped


def method_optim_wrapper(method_config: str,
                         harness_optim_wrapper: dict) -> dict:
    """The optimizer wrapper a method trains with: the harness's own, or,
    for a method with an adversarial term (an ``optim_wrapper`` with
    ``mmkd.AdversarialOptimWrapperConstructor``), the harness's own as its
    ``student`` entry beside the method's ``discriminator`` entry; the
    harness's plain scheduler list then applies to both."""
    declared = Config.fromfile(method_config).get('optim_wrapper')
    if not uses_adversarial_constructor(declared):
        return harness_optim_wrapper
    return dict(constructor=declared['constructor'],
                student=copy.deepcopy(harness_optim_wrapper),
                discriminator=declared['discriminator'].to_dict())


def method_custom_hooks(method_config: str) -> List[dict]:
    """The hooks a method's config declares (``custom_hooks``, e.g.
    ``mmkd.DistillSwitchHook`` switching its terms off for the end of
    training), which its runs train with beside the harness's; none for
    most rows, whose run configs (and hashes) stay as they were."""
    hooks = Config.fromfile(method_config).get('custom_hooks') or []
    return [hook.to_dict() if hasattr(hook, 'to_dict') else dict(hook)
            for hook in hooks]


def summarize(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    values = list(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), std


def run_benchmark(methods: List[Tuple[str, str]], seeds: List[int],
                  schedules: Dict[str, Dict[str, int]], cache: str,
                  progress_interval: int = 50,
                  on_row: Optional[Callable[[List[Dict], Dict], None]] = None,
                  prepare_only: bool = False,
                  compute_matched: bool = False,
                  records: Optional[str] = None) -> Tuple[List[Dict], Dict]:
    """Every run the chosen methods need; returns the JSON rows and the
    loss records of the first seed (``{task: (student, distilled)}``).
    ``on_row(rows, curves)`` is called after each finished method.
    ``prepare_only``: train (or load) only the teachers and the students
    alone that the methods need, and return no rows. ``compute_matched``:
    end each suite with a row of its student alone trained for the CPU
    time of the suite's costliest row (``student_compute_matched``).
    ``records``: the folder of run records (:func:`run_cached`)."""
    rows, curves, builders, teachers, students_alone = [], {}, {}, {}, {}

    def builder(suite: str) -> Callable[[dict, int, int, int], Config]:
        """The runner config builder of a suite's task (its data made
        once)."""
        if suite not in builders:
            task = SUITES[suite]['task']
            sched = schedules[task]
            data_root = ensure_data(task, cache, sched['num_train'],
                                    sched['num_val'],
                                    sched.get('glyphs', 'digits'))

            def config(model: dict, iters: int, seed: int,
                       batch_size: int) -> Config:
                return task_runner_config(task, model, data_root, iters,
                                          seed, batch_size,
                                          sched['num_workers'])
            builders[suite] = config
        return builders[suite]

    def teacher_of(suite: str, need_checkpoint: bool = True) -> Dict:
        """The suite's trained teacher, shared by all its methods (and by
        other suites' rows that name it); without ``need_checkpoint``, its
        record will do (every run that reads it is recorded)."""
        if suite not in teachers or (need_checkpoint and not osp.isfile(
                teachers[suite]['checkpoint'])):
            spec = SUITES[suite]
            sched = schedules[spec['task']]
            cfg = builder(suite)(
                Config.fromfile(spec['teacher']).model.to_dict(),
                sched['teacher_iters'], 0, sched['batch_size'])
            if spec.get('teacher_scale'):
                cfg = scale_inputs(cfg, spec['teacher_scale'])
            teachers[suite] = run_cached(spec['task'], 'teacher', cfg,
                                         cache, progress_interval,
                                         records=records,
                                         need_checkpoint=need_checkpoint)
        return teachers[suite]

    def student_alone(suite: str, seed: int,
                      need_checkpoint: bool = False) -> Dict:
        """The suite's student alone, one seed."""
        spec = SUITES[suite]
        sched = schedules[spec['task']]
        return run_cached(
            spec['task'], f'student_seed{seed}', builder(suite)(
                Config.fromfile(spec['student']).model.to_dict(),
                sched['student_iters'], seed, sched['student_batch_size']),
            cache, progress_interval, records=records,
            need_checkpoint=need_checkpoint)

    def students_of(suite: str) -> List[Dict]:
        """The suite's student-alone runs, one a seed."""
        if suite not in students_alone:
            students_alone[suite] = [student_alone(suite, seed)
                                     for seed in seeds]
        return students_alone[suite]

    def distilled_config(suite: str, path: str, model: dict,
                         seed: int) -> Config:
        sched = schedules[SUITES[suite]['task']]
        cfg = builder(suite)(model, sched['student_iters'], seed,
                             sched['student_batch_size'])
        cfg.optim_wrapper = method_optim_wrapper(
            path, cfg.optim_wrapper.to_dict())
        hooks = method_custom_hooks(path)
        if hooks:
            cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + hooks
        return cfg

    def born_again(suite: str, path: str, last: int, seed: int,
                   student: Dict) -> Dict:
        """Generations 1..``last`` of one seed, each distilled from the
        one before (generation 0: ``student``, the student alone); the
        runs are cached by generation, so rows share their chains."""
        if not osp.isfile(student['checkpoint']):  # loaded from a record
            student = student_alone(suite, seed, need_checkpoint=True)
        previous, result = student, student
        for gen in range(1, last + 1):
            model = distill_model(path, previous['checkpoint'])
            if gen > 1:  # a distiller's checkpoint: its student's weights
                model['teacher']['strip_prefix'] = 'student.'
            result = run_cached(SUITES[suite]['task'],
                                f'born_again_gen{gen}_seed{seed}',
                                distilled_config(suite, path, model, seed),
                                cache, progress_interval, records=records,
                                need_checkpoint=gen < last)
            previous = result
        return result

    def compute_matched_row(suite: str) -> Optional[Dict]:
        """The suite's student alone trained for the CPU time of its
        costliest row (:func:`matched_iterations`), beside the
        equal-iteration student: a distilled row must also beat this one
        to be worth its compute."""
        iters = matched_iterations(rows, suite)
        spec = SUITES[suite]
        task = spec['task']
        sched = schedules[task]
        if iters is None or iters <= sched['student_iters']:
            return None
        model = Config.fromfile(spec['student']).model.to_dict()
        matched = [run_cached(task, f'student_{iters}it_seed{seed}',
                              builder(suite)(model, iters, seed,
                                             sched['student_batch_size']),
                              cache, progress_interval, records=records)
                   for seed in seeds]
        students = students_of(suite)
        suite_rows = [r for r in rows if _suite(r) == suite]
        costliest = max(suite_rows, key=lambda r: (
            r.get('cpu_seconds') or 0) / (r.get('student_cpu_seconds') or 1))
        teacher = next((r['teacher'] for r in suite_rows
                        if r['teacher'] is not None), None)
        metric, second = spec['metric'], spec['secondary']
        return dict(
            task=task, suite=suite, method=COMPUTE_MATCHED,
            config=osp.relpath(spec['student'], REPO), metric=metric,
            seeds=list(seeds), iters=iters,
            matched_to=costliest['method'],
            student=[r[metric] for r in students],
            distilled=[r[metric] for r in matched], teacher=teacher,
            s_per_iter=statistics.mean(r['s_per_iter'] for r in matched),
            student_s_per_iter=statistics.mean(
                r['s_per_iter'] for r in students),
            cpu_seconds=mean_cpu_seconds(matched),
            student_cpu_seconds=mean_cpu_seconds(students),
            secondary=dict(
                metric=second,
                student=[r[second] for r in students],
                distilled=[r[second] for r in matched],
                teacher=None))

    for suite, method in methods:
        spec = SUITES[suite]
        task = spec['task']
        path = method_config((suite, method))
        slots = external_teachers(path)
        metric, second = spec['metric'], spec['secondary']
        named = None
        if generation((suite, method)):
            students = students_of(suite)
            if prepare_only:
                continue
            distilled = [born_again(suite, path, generation(
                (suite, method)), seed, student) for seed, student in zip(
                    seeds, students)]
            teacher, named = None, {}  # the previous generation's
        elif slots is None:  # one teacher: the suite's
            teacher_suites_read = [suite]
            teacher = teacher_of(suite, need_checkpoint=prepare_only)
            students = students_of(suite)
            if prepare_only:
                continue
            model = distill_model(path, teacher['checkpoint'])
        else:  # named teachers, each a suite's (or none: an EMA teacher)
            suite_of_slot = teacher_suites((suite, method))
            slot_suites = {name: suite_of_slot[name] for name in slots
                           if name in suite_of_slot}
            teacher_suites_read = list(slot_suites.values())
            slot_teachers = {name: teacher_of(teacher_suite,
                                              need_checkpoint=prepare_only)
                             for name, teacher_suite in slot_suites.items()}
            students = students_of(suite)
            if prepare_only:
                continue
            model = distill_model(path, teachers={
                name: t['checkpoint'] for name, t in slot_teachers.items()})
            named = {name: dict(suite=slot_suites[name],
                                **{metric: t[metric], second: t[second]})
                     for name, t in slot_teachers.items()}
            # the gap closed is to the best of the row's teachers
            teacher = max(slot_teachers.values(), key=lambda t: t[metric],
                          default=None)

        if not generation((suite, method)):
            configs = {seed: distilled_config(suite, path, model, seed)
                       for seed in seeds}
            # a teacher is trained again only for a run left to train
            # (its checkpoint path, hence each run's hash, is the same)
            if not all(is_cached(task, f'{method}_seed{seed}',
                                 copy.deepcopy(cfg), cache, records)
                       for seed, cfg in configs.items()):
                for teacher_suite in teacher_suites_read:
                    teacher_of(teacher_suite)
            distilled = [run_cached(task, f'{method}_seed{seed}', cfg,
                                    cache, progress_interval,
                                    records=records)
                         for seed, cfg in configs.items()]
        rows.append(dict(
            task=task, suite=suite, method=method,
            config=osp.relpath(path, REPO), metric=metric,
            seeds=list(seeds),
            student=[r[metric] for r in students],
            distilled=[r[metric] for r in distilled],
            teacher=teacher[metric] if teacher else None,
            s_per_iter=statistics.mean(
                r['s_per_iter'] for r in distilled),
            student_s_per_iter=statistics.mean(
                r['s_per_iter'] for r in students),
            cpu_seconds=mean_cpu_seconds(distilled),
            student_cpu_seconds=mean_cpu_seconds(students),
            iters=schedules[task]['student_iters'],
            secondary=dict(
                metric=second,
                student=[r[second] for r in students],
                distilled=[r[second] for r in distilled],
                teacher=teacher[second] if teacher else None)))
        if named is not None:
            rows[-1]['teachers'] = named
        # a peer's own model may log its losses under other names
        # (MMRazor: student.loss_cls): the curves come from a row that
        # logs the student's
        if set(students[0]['losses']) <= set(distilled[0]['losses']):
            curves.setdefault(task, (method, students[0]['losses'],
                                     distilled[0]['losses']))
        if on_row is not None:
            on_row(rows, curves)
    if compute_matched and not prepare_only:
        for suite in dict.fromkeys(_suite(r) for r in rows):
            row = compute_matched_row(suite)
            if row is not None:
                rows.append(row)
                if on_row is not None:
                    on_row(rows, curves)
    if prepare_only:
        for suite, teacher in teachers.items():
            metric = SUITES[suite]['metric']
            print(f'[{SUITES[suite]["task"]}] suite {suite}: teacher '
                  f'{metric} {teacher[metric]:.4g}, '
                  f'{teacher["s_per_iter"]:.3f} s/iter, '
                  f'{teacher["checkpoint"]}', flush=True)
    return rows, curves


def mean_cpu_seconds(results: Sequence[Dict]) -> Optional[float]:
    """Mean CPU time of the training process over runs (data-loading
    workers excluded), or ``None`` when a cached run predates the
    record."""
    seconds = [r.get('cpu_seconds') for r in results]
    if not seconds or any(s is None for s in seconds):
        return None
    return statistics.mean(seconds)


def paired_gain(row: Dict) -> Tuple[float, float, int, int]:
    """Per-seed gains ``distilled - student`` of a row: seed ``s`` gives
    both runs the same initialisation and data order, so the differences
    are paired. Returns their mean, its standard error (``stdev / sqrt(n)``,
    0 for one seed), the number of seeds that improved and the number of
    seeds."""
    gains = [b - a for a, b in zip(row['student'], row['distilled'])]
    mean, std = summarize(gains)
    return mean, std / len(gains) ** 0.5, sum(g > 0 for g in gains), \
        len(gains)


def matched_iterations(rows: Sequence[Dict], suite: str,
                       step: float = 0.25) -> Optional[int]:
    """Student-alone iterations that cost as much CPU time as the suite's
    costliest row: the equal-iteration schedule times the largest ratio of
    a row's CPU seconds to its student's, rounded up to a multiple of
    ``step`` (so that timing noise does not change the schedule, nor the
    cached run it names). ``None`` when no row of the suite records CPU
    time."""
    ratios = [r['cpu_seconds'] / r['student_cpu_seconds'] for r in rows
              if _suite(r) == suite and r.get('cpu_seconds')
              and r.get('student_cpu_seconds')
              and r['method'] != COMPUTE_MATCHED]
    if not ratios:
        return None
    iters = next(r['iters'] for r in rows if _suite(r) == suite)
    ratio = max(1.0, -(-max(ratios) // step) * step)
    return int(round(iters * ratio))


def gap_closed(row: Dict) -> float:
    """The fraction of the teacher-student gap the method closes (NaN for
    a row without an external teacher)."""
    if row['teacher'] is None:
        return float('nan')
    student = statistics.mean(row['student'])
    gap = row['teacher'] - student
    gain = statistics.mean(row['distilled']) - student
    return gain / gap if gap else float('nan')


def _fmt(value: float, metric: str) -> str:
    return f'{value:.3f}' if metric.startswith('AP') else f'{value:.2f}'


def _signed(value: float, metric: str) -> str:
    return ('+' if value >= 0 else '') + _fmt(value, metric)


def _pm(values: Sequence[float], metric: str) -> str:
    mean, std = summarize(values)
    return f'{_fmt(mean, metric)} ± {_fmt(std, metric)}'


def _percent(value: float) -> str:
    return '-' if value != value else f'{value:.0%}'  # NaN: no teacher


def machine() -> str:
    """CPU model and core count (``lscpu``), or the platform's name."""
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True,
                             check=True).stdout
        info = dict(line.split(':', 1) for line in out.splitlines()
                    if ':' in line)
        model = info.get('Model name', platform.processor()).strip()
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor() or platform.machine()
    return f'{model}, {os.cpu_count()} cores'


def _suite(row: Dict) -> str:
    return row.get('suite', row['task'])


def _teacher_cell(row: Dict) -> str:
    """The teacher column: the teacher's metric; for named teachers, each
    by name where there are several; '-' where there is none (an EMA
    teacher of the student)."""
    named = row.get('teachers')
    if named is None:
        return _fmt(row['teacher'], row['metric'])
    if not named:
        return '-'
    if len(named) == 1:
        return _fmt(next(iter(named.values()))[row['metric']], row['metric'])
    return ', '.join(f'{name} {_fmt(t[row["metric"]], row["metric"])}'
                     for name, t in named.items())


def _cpu_cell(row: Dict) -> str:
    student, distilled = (row.get('student_cpu_seconds'),
                          row.get('cpu_seconds'))
    if student is None or distilled is None:
        return '-'
    return f'{student:.0f} → {distilled:.0f} (×{distilled / student:.2f})'


def _suite_text(suite: str) -> str:
    spec = SUITES[suite]
    scale = spec.get('teacher_scale')
    return (f'{suite}: `{osp.basename(spec["teacher"])}`' +
            (f' (trained and scored at {scale}× the input size)'
             if scale else '') + f' → `{osp.basename(spec["student"])}`')


def format_markdown(rows: List[Dict], schedules: Dict[str, Dict[str, int]],
                    command: str, seconds: Optional[float],
                    missing: Sequence[str] = (),
                    skipped: Optional[Dict[str, str]] = None) -> str:
    """The human-readable report; ``missing`` names methods not run yet,
    ``skipped`` the peer rows that cannot run here, with the reason."""
    lines = [
        '# Distillation benchmarks on the ' + (
            'shapes sets (the digits scenes drawn with the ten shapes of '
            '`tools/demo/shapes.py`: a set the configs were never tuned '
            'on)' if any(s.get('glyphs') == 'shapes'
                         for s in schedules.values()) else 'digits sets'),
        '',
        'Generated by `tools/benchmark/accuracy.py` (do not edit by hand).',
        '', f'- command: `{command}`',
        f'- machine: {machine()}; date: '
        f'{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; ' + (
            f'wall time of this run: {seconds / 60:.1f} min (cached runs '
            'excluded)' if seconds is not None else
            're-rendered from the JSON rows (`--render-only`)'),
        '- schedules (per task): ' + '; '.join(
            f'{task}: teacher {s["teacher_iters"]} iterations at batch '
            f'{s["batch_size"]}, students {s["student_iters"]} at batch '
            f'{s["student_batch_size"]}, '
            f'{s["num_train"]} train / {s["num_val"]} val images (128×128)'
            for task, s in schedules.items()
            if any(r['task'] == task for r in rows)) +
        '; AdamW 2e-3, linear warm-up then cosine; seeds change '
        'initialisation and data order, the data are fixed',
        '- suites (teacher → student, `configs/bench/_base_/`): ' +
        '; '.join(
            _suite_text(suite) for suite in dict.fromkeys(
                s for r in rows for s in [_suite(r)] + [
                    t['suite'] for t in r.get('teachers', {}).values()])
            if suite in SUITES) +
        '; detection is scored by COCO AP (pycocotools), segmentation by '
        'mIoU (%) over 11 classes (mmseg IoUMetric)',
        '- s/iter: wall time of a training iteration, data loading '
        'included, mean over seeds (student alone → distilled); the CPU '
        'is shared with other jobs, so times are indicative only'] + ([
            '- named teachers (`teachers=dict(...)`): each is the teacher '
            'of the suite the manifest maps it to; with several, the '
            'teacher column names each and the gap closed is to the best; '
            '`-`: no external teacher (an EMA of the student, or, for '
            'born-again rows, the previous generation of the same seed), '
            'no gap'
        ] if any('teachers' in r for r in rows) else []) + [
        '- paired gain: the mean over seeds of distilled − student of the '
        'same seed (same initialisation and data order) ± its standard '
        'error, and how many seeds improved; CPU-s: CPU seconds of the '
        'training process (data-loading worker excluded), mean over seeds, '
        'student alone → distilled (`-`: runs cached before it was '
        'recorded)'] + ([
            f'- `{COMPUTE_MATCHED}`: the student alone trained for as many '
            'iterations as cost the CPU time of the suite\'s costliest row '
            '(named in brackets), against the equal-iteration student: a '
            'method is worth its compute only where it also beats this row'
        ] if any(r['method'] == COMPUTE_MATCHED for r in rows) else []) + [
        '', '| suite | method | metric | teacher | student | distilled | '
        'paired gain ± s.e. (seeds up) | gap closed | second metric '
        '(student → distilled) | s/iter | CPU-s | config |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        metric = row['metric']
        gain, error, improved, count = paired_gain(row)
        method = row['method']
        if method == COMPUTE_MATCHED:
            method += f' ({row["iters"]} it, = {row["matched_to"]})'
        second = row.get('secondary')
        second_text = (f'{second["metric"]} '
                       f'{_pm(second["student"], second["metric"])} → '
                       f'{_pm(second["distilled"], second["metric"])}'
                       if second else '')
        lines.append(
            f'| {_suite(row)} | {method} | {metric} | '
            f'{_teacher_cell(row)} | '
            f'{_pm(row["student"], metric)} | '
            f'{_pm(row["distilled"], metric)} | '
            f'{_signed(gain, metric)} ± {_fmt(error, metric)} '
            f'({improved}/{count}) | {_percent(gap_closed(row))} | '
            f'{second_text} | '
            f'{row.get("student_s_per_iter", float("nan")):.3f} → '
            f'{row["s_per_iter"]:.3f} | {_cpu_cell(row)} | '
            f'`{row["config"]}` |')
    if missing:
        lines += ['', f'**Partial**: not run yet: {", ".join(missing)} '
                  '(re-run the command: finished runs are cached).']
    for name, reason in (skipped or {}).items():
        lines += ['', f'**Skipped**: {name}: {reason}.']
    lines += ['', 'Per seed (student → distilled):', '']
    for row in rows:
        pairs = ', '.join(
            f'seed {s}: {_fmt(a, row["metric"])} → {_fmt(b, row["metric"])}'
            for s, a, b in zip(row['seeds'], row['student'],
                               row['distilled']))
        lines.append(f'- {_suite(row)} {row["method"]}: {pairs}')
    return '\n'.join(lines) + '\n'


#: method-name prefixes of the rows run with another tool's implementation
PEER_PREFIXES = ('mmrazor_', 'mmdet_')


def is_peer_row(row: Dict) -> bool:
    """A row trained with a peer tool's implementation (MMRazor, mmdet)."""
    return row['method'].startswith(PEER_PREFIXES)


def task_loss_curve(losses: Dict[str, List[float]]) -> List[float]:
    """The task loss per logged iteration: the sum of the logged task
    losses, or, where only the total ``loss`` is logged (mmseg's losses
    are named ``decode.loss_ce``), the total less the distillation
    terms."""
    task_keys = [k for k in losses
                 if k != 'loss' and not k.startswith('loss_distill')]
    if task_keys:
        return [sum(v) for v in zip(*(losses[k] for k in task_keys))]
    total = losses.get('loss', [])
    distill = [losses[k] for k in losses if k.startswith('loss_distill')]
    if not distill:
        return list(total)
    return [t - sum(d) for t, *d in zip(total, *distill)]


def plot(rows: List[Dict], curves: Dict, out_dir: str,
         name: str = 'benchmarks') -> List[str]:
    """Paired gain per method, one panel per suite, and the loss curves
    (``<name>_gain.png``, ``<name>_loss.png`` in ``out_dir``).

    Bars are the mean per-seed gain (distilled - student alone of the same
    seed) with its standard error, sorted by gain; each seed's gain is a
    point on its bar; peer implementations (MMRazor, mmdet) are orange."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        print('matplotlib is not installed: no plots '
              '(pip install matplotlib)', flush=True)
        return []
    suites = list(dict.fromkeys(_suite(r) for r in rows))
    # each panel as wide as its bars
    widths = [max(2.5, 0.45 * sum(_suite(r) == s for r in rows) + 1.3)
              for s in suites]
    fig, axes = plt.subplots(
        1, len(suites), figsize=(sum(widths), 4.2), squeeze=False,
        gridspec_kw=dict(width_ratios=widths))
    for ax, suite in zip(axes[0], suites):
        gains = []
        for r in (r for r in rows if _suite(r) == suite):
            mean, se, _, _ = paired_gain(r)
            diffs = [d - s for s, d in zip(r['student'], r['distilled'])]
            gains.append((mean, se, diffs, r))
        gains.sort(key=lambda g: g[0], reverse=True)
        xs = range(len(gains))
        ax.bar(xs, [g[0] for g in gains], yerr=[g[1] for g in gains],
               capsize=4, color=['tab:orange' if is_peer_row(g[3]) else
                                 'tab:blue' for g in gains])
        for x, (_, _, diffs, _) in zip(xs, gains):
            ax.plot([x] * len(diffs), diffs, 'k.', markersize=4)
        ax.axhline(0, color='black', linewidth=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([g[3]['method'] for g in gains], rotation=40,
                           ha='right', fontsize=8)
        ax.set_ylabel(f'paired gain in {gains[0][3]["metric"]}\n'
                      '(mean ± s.e.; dots: seeds)', fontsize=8)
        ax.set_title(suite)
        if any(is_peer_row(g[3]) for g in gains):
            ax.legend(handles=[Patch(color='tab:blue', label='mmkd'),
                               Patch(color='tab:orange',
                                     label='peer implementation')],
                      fontsize=7)
    fig.tight_layout()
    gain_png = osp.join(out_dir, f'{name}_gain.png')
    fig.savefig(gain_png, dpi=120)
    plt.close(fig)
    if not curves:
        return [gain_png]

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5),
                             squeeze=False)
    for ax, (task, (method, alone, distilled)) in zip(axes[0],
                                                      curves.items()):
        for label, losses in (('student alone', alone),
                              (f'student + {method}', distilled)):
            ax.plot(_smooth(task_loss_curve(losses)),
                    label=f'{label}: task loss')
        distill = [k for k in distilled if k.startswith('loss_distill')]
        if distill:
            term = [sum(v) for v in zip(*(distilled[k] for k in distill))]
            ax.plot(_smooth(term), label=f'{method}: distill loss')
        ax.set_xlabel('iteration')
        ax.set_yscale('log')
        ax.set_title(f'{task}, first seed (moving average)')
        ax.legend(fontsize=7)
    fig.tight_layout()
    loss_png = osp.join(out_dir, f'{name}_loss.png')
    fig.savefig(loss_png, dpi=120)
    plt.close(fig)
    return [gain_png, loss_png]


def _smooth(values: List[float], window: int = 20) -> List[float]:
    window = max(1, min(window, len(values) // 5 or 1))
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def iterations_by_task(text: str) -> Dict[Optional[str], int]:
    """``--student-iters``/``--teacher-iters``: ``'1200'`` gives
    ``{None: 1200}`` (every task), ``'det=1200,seg=3000'`` one count per
    task (``det`` also sets the schedule of the det suites)."""
    counts: Dict[Optional[str], int] = {}
    for item in text.split(','):
        task, _, value = item.rpartition('=')
        task = task.strip() or None
        if task is not None and task not in SCHEDULES['full']:
            raise argparse.ArgumentTypeError(
                f'unknown task {task!r} in {text!r}; the tasks are '
                f'{sorted(SCHEDULES["full"])}')
        try:
            counts[task] = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{value!r} in {text!r} is not an iteration count; give '
                f'N or task=N pairs, e.g. det=1200,seg=3000') from None
        if counts[task] <= 0:
            raise argparse.ArgumentTypeError(
                f'iteration counts must be positive, got {text!r}')
    return counts


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', help='comma-separated subset, e.g. '
                        'fgfi,seg:pixel (default: the whole manifest)')
    parser.add_argument('--seeds', default='0,1,2',
                        help='comma-separated seeds (default 0,1,2)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny data and a few iterations: a smoke run')
    parser.add_argument('--out', default='docs',
                        help='folder of benchmarks.md/.json and the plots')
    parser.add_argument('--name', default='benchmarks',
                        help='base name of the outputs in --out (default '
                        'benchmarks: benchmarks.md, benchmarks.json, '
                        'benchmarks_gain.png, benchmarks_loss.png)')
    parser.add_argument('--work-dir', default='work_dirs/bench',
                        help='data and cached runs')
    parser.add_argument('--teacher-iters', type=iterations_by_task,
                        help='override the teachers\' schedule: N for '
                        'every task, or per task, e.g. det=4000,seg=2000')
    parser.add_argument('--student-iters', type=iterations_by_task,
                        help='override the students\' schedule: N for '
                        'every task, or per task, e.g. det=1200,seg=3000')
    parser.add_argument('--prepare-only', action='store_true',
                        help='train (or load from the cache) only the '
                        'teachers and the students alone the chosen '
                        'methods need, print the teachers\' metrics and '
                        'write no outputs')
    parser.add_argument('--glyphs', choices=('digits', 'shapes'),
                        default='digits',
                        help='the scenes\' glyphs: the digits the configs '
                        'were tuned on, or the shapes of tools/demo/'
                        'shapes.py (a second set, to check that gains hold)')
    parser.add_argument('--compute-matched', action='store_true',
                        help='end each suite with its student alone '
                        'trained for the CPU time of its costliest row')
    parser.add_argument('--render-only', action='store_true',
                        help='rewrite the table of --out/--name from its '
                        'JSON rows (no training; no plots)')
    parser.add_argument('--records', default=None,
                        help='folder of each run\'s small result record '
                        '(metrics, cost, config hash, seed), kept in the '
                        'repository: a recorded run is not trained again '
                        'on any machine, so a benchmark resumes where an '
                        'earlier session stopped (default: '
                        'tools/benchmark/records/runs; none for --quick; '
                        '\'\' for none)')
    parser.add_argument('--progress-interval', type=int, default=50)
    parser.add_argument('--peers-path', default=PEERS_PATH,
                        help='folder holding MMRazor\'s package for its '
                        'peer rows, which are skipped when it does not '
                        'import (default: ../shared/peers/mmrazor-90c7af1 '
                        'beside the repository)')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads; 1 is several times faster '
                        'on a CPU shared with other jobs (default: torch '
                        'decides)')
    args = parser.parse_args(argv)
    try:
        args.seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
        args.methods = select_methods(args.methods)
    except ValueError as e:
        parser.error(str(e))
    if not args.seeds:
        parser.error('--seeds needs at least one seed')
    if args.records is None and not args.quick:
        args.records = RECORDS
    args.records = args.records or None  # '': none
    return args


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    command = 'python tools/benchmark/accuracy.py ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    schedules = {task: dict(schedule) for task, schedule in
                 SCHEDULES['quick' if args.quick else 'full'].items()}
    for schedule in schedules.values():
        schedule['glyphs'] = args.glyphs
    for key in ('teacher_iters', 'student_iters'):
        for task, iters in (getattr(args, key) or {}).items():
            for name in (schedules if task is None else [task]):
                schedules[name][key] = iters
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    methods, skipped = split_peer_rows(args.methods, args.peers_path)

    def write_outputs(rows: List[Dict], curves: Dict) -> str:
        """The outputs so far: an interrupted run leaves its finished
        methods (and names the others) in ``--out``."""
        done = {(r['suite'], r['method']) for r in rows}
        missing = [f'{t}:{m}' for t, m in methods if (t, m) not in done]
        with open(osp.join(args.out, f'{args.name}.json'), 'w') as f:
            json.dump(rows, f, indent=2)
        report = format_markdown(rows, schedules, command,
                                 time.time() - start, missing, skipped)
        with open(osp.join(args.out, f'{args.name}.md'), 'w') as f:
            f.write(report)
        if rows:
            plot(rows, curves, args.out, args.name)
        return report

    if args.render_only:
        with open(osp.join(args.out, f'{args.name}.json')) as f:
            rows = json.load(f)
        table = osp.join(args.out, f'{args.name}.md')
        original = None
        if osp.isfile(table):
            with open(table) as f:
                original = next((line[len('- command: `'):].split('`')[0]
                                 for line in f
                                 if line.startswith('- command: `')), None)
        report = format_markdown(rows, schedules, original or command, None)
        with open(osp.join(args.out, f'{args.name}.md'), 'w') as f:
            f.write(report)
        print(report, flush=True)
        return rows
    if args.prepare_only:
        run_benchmark(methods, args.seeds, schedules, args.work_dir,
                      args.progress_interval, prepare_only=True,
                      records=args.records)
        return []
    rows, curves = run_benchmark(methods, args.seeds, schedules,
                                 args.work_dir, args.progress_interval,
                                 write_outputs,
                                 compute_matched=args.compute_matched,
                                 records=args.records)
    print('\n' + write_outputs(rows, curves), flush=True)
    return rows


if __name__ == '__main__':
    main()
