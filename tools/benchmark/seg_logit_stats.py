"""What pixel-wise KD hands a segmentation student: the teacher's score maps.

For a digits segmentation teacher checkpoint (``configs/bench/_base_/
digits_fcn_r18w32-d8.py`` by default) and optionally a student checkpoint,
runs both on training batches and reports, over the labelled pixels:

- ``teacher_accuracy`` (and ``student_accuracy``): argmax equals the label;
- ``teacher_max_prob`` and ``teacher_entropy`` (in units of ``log K``) of
  the softmax at temperature ``--temperature``: how much a soft target says
  beyond its argmax (1.0 and 0.0: a one-hot label);
- ``teacher_confident``: the fraction of pixels with a max probability
  above 0.9;
- ``teacher_wrong_confident``: the fraction of pixels where the teacher is
  wrong with a max probability above 0.9;
- for each ``--weights`` w: ``target_wrong_w{w}``, the fraction of pixels
  where the minimiser of ``CE + w · KL(p_t ‖ p_s)``, ``(y + w·p_t) / (1 +
  w)``, does not pick the label (the pixels the term teaches wrongly);
- with a student: ``student_right_teacher_wrong``, the pixels the student
  alone gets right where the teacher does not;
- at the score maps' own resolution (what ``PixelwiseKD`` compares by
  default, 1/8 of the input for a dilated FCN): ``labelled_background``,
  the background's share of the labelled pixels; ``map_background``, the
  share of score-map cells whose teacher argmax is the background;
  ``object_pixels_in_background_cells``, the share of the labelled object
  pixels whose cell (the score map's cell covering them) the teacher's
  map calls background, i.e. where a KL on the score map pulls towards
  the background what the cross-entropy on the resized map calls an
  object.

It explains why pixel-wise KD moves a student or not (docs/evidence.md);
it trains nothing and appends one JSON line to ``--out`` if given.

Example::

    python tools/benchmark/seg_logit_stats.py \\
        --teacher-checkpoint work_dirs/bench_seg/seg_teacher_*/iter_2000.pth \\
        --data work_dirs/bench_seg/data_seg_region_2000_300 --batches 10
"""
import argparse
import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import accuracy  # noqa: E402

from mmkd.utils.checkpoint import load_state_dict_strictly  # noqa: E402

CONFIDENT = 0.9


def pixel_stats(teacher_logits: torch.Tensor, labels: torch.Tensor,
                weights: Sequence[float], temperature: float = 1.0,
                student_logits: Optional[torch.Tensor] = None,
                ignore_index: int = 255) -> Dict[str, float]:
    """The statistics of one batch (module docstring) over its labelled
    pixels.

    Args:
        teacher_logits: (N, K, H, W) scores.
        labels: (N, H, W) class indices, ``ignore_index`` where unlabelled.
        weights: the KD weights w whose target ``(y + w·p_t) / (1 + w)``
            is checked.
        temperature: the softmax temperature of the soft targets.
        student_logits: (N, K, H, W) scores of a student, or ``None``.
        ignore_index: the label of unlabelled pixels.
    """
    num_classes = teacher_logits.shape[1]
    keep = labels != ignore_index
    y = labels[keep]
    # (P, K): the labelled pixels' soft targets
    p_t = F.softmax(teacher_logits.float() / temperature, dim=1)
    p_t = p_t.permute(0, 2, 3, 1)[keep]
    max_prob, teacher_pred = p_t.max(dim=1)
    entropy = -(p_t * p_t.clamp_min(1e-12).log()).sum(1)
    wrong = teacher_pred != y
    stats = dict(
        pixels=float(y.numel()),
        teacher_accuracy=float((~wrong).float().mean()),
        teacher_max_prob=float(max_prob.mean()),
        teacher_entropy=float(entropy.mean()) / float(
            torch.log(torch.tensor(float(num_classes)))),
        teacher_confident=float((max_prob > CONFIDENT).float().mean()),
        teacher_wrong_confident=float(
            (wrong & (max_prob > CONFIDENT)).float().mean()))
    one_hot = F.one_hot(y, num_classes).float()
    for w in weights:
        target = (one_hot + w * p_t) / (1 + w)
        stats[f'target_wrong_w{w:g}'] = float(
            (target.argmax(1) != y).float().mean())
    if student_logits is not None:
        student_pred = student_logits.argmax(1)[keep]
        right = student_pred == y
        stats.update(student_accuracy=float(right.float().mean()),
                     student_right_teacher_wrong=float(
                         (right & wrong).float().mean()))
    return stats


def score_map_stats(teacher_map: torch.Tensor, labels: torch.Tensor,
                    background: int = 0,
                    ignore_index: int = 255) -> Dict[str, float]:
    """Statistics at the score map's own resolution (module docstring).

    Args:
        teacher_map: (N, K, h, w) scores as the head gives them.
        labels: (N, H, W) class indices at the input's resolution; each
            pixel belongs to the cell ``(y * h // H, x * w // W)``.
        background: the background's class index.
        ignore_index: the label of unlabelled pixels.
    """
    cells = teacher_map.argmax(1)  # (N, h, w)
    (h, w), (H, W) = cells.shape[-2:], labels.shape[-2:]
    rows = torch.arange(H, device=labels.device) * h // H
    cols = torch.arange(W, device=labels.device) * w // W
    cell_of_pixel = cells[:, rows][:, :, cols]  # (N, H, W)
    keep = labels != ignore_index
    objects = keep & (labels != background)
    return dict(
        labelled_background=float(
            (labels[keep] == background).float().mean()),
        map_background=float((cells == background).float().mean()),
        object_pixels_in_background_cells=float(
            (cell_of_pixel[objects] == background).float().mean())
        if objects.any() else 0.0)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--teacher-config', default=accuracy.SUITES['seg'][
        'teacher'], help='the teacher model (default: the digits seg '
        "suite's)")
    parser.add_argument('--teacher-checkpoint', required=True)
    parser.add_argument('--student-config',
                        default=accuracy.SUITES['seg']['student'])
    parser.add_argument('--student-checkpoint',
                        help='a student to compare (a plain segmentor '
                        'checkpoint); default: none')
    parser.add_argument('--data', required=True,
                        help='the digits segmentation data folder the '
                        'benchmark made (work_dir/data_seg_...)')
    parser.add_argument('--batches', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--temperature', type=float, default=1.0)
    parser.add_argument('--weights', default='1,10',
                        help='comma-separated KD weights whose target is '
                        'checked (default: 1, 10 as in SKD)')
    parser.add_argument('--out', help='append the result as a JSON line')
    return parser.parse_args(argv)


def _model(config: str, checkpoint: str, data: str, batch_size: int
           ) -> Runner:
    cfg = accuracy.task_runner_config(
        'seg', Config.fromfile(config).model.to_dict(), data, 1, 0,
        batch_size, 0)
    cfg.work_dir = osp.join('work_dirs', 'seg_logit_stats')
    runner = Runner.from_cfg(cfg)
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    load_state_dict_strictly(runner.model, state, checkpoint,
                             owner=osp.basename(config))
    runner.model.eval()
    return runner


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    for path in (args.teacher_checkpoint, args.student_checkpoint):
        if path and not osp.isfile(path):
            raise FileNotFoundError(f'No checkpoint at {path}.')
    if not osp.isdir(osp.join(args.data, 'ann_dir')):
        raise FileNotFoundError(
            f'{args.data} holds no ann_dir: give the data folder that '
            'tools/benchmark/accuracy.py made (work_dir/data_seg_*).')
    weights = [float(w) for w in args.weights.split(',')]
    torch.manual_seed(0)
    teacher = _model(args.teacher_config, args.teacher_checkpoint,
                     args.data, args.batch_size)
    student = _model(args.student_config, args.student_checkpoint,
                     args.data, args.batch_size) \
        if args.student_checkpoint else None
    steps: List[Dict[str, float]] = []
    with torch.no_grad():
        for i, batch in enumerate(teacher.train_dataloader):
            if i == args.batches:
                break
            data = teacher.model.data_preprocessor(batch, False)
            labels = torch.stack([s.gt_sem_seg.data[0]
                                  for s in data['data_samples']])
            # the head's own score maps (encode_decode resizes them)
            maps = [runner.model.decode_head(
                runner.model.extract_feat(data['inputs']))
                for runner in (teacher, student) if runner is not None]
            logits = [F.interpolate(m, size=labels.shape[-2:],
                                    mode='bilinear', align_corners=False)
                      for m in maps]
            stats = pixel_stats(
                logits[0], labels, weights, args.temperature,
                logits[1] if student is not None else None)
            stats.update(score_map_stats(maps[0], labels))
            steps.append(stats)
    total = sum(s['pixels'] for s in steps)
    result = dict(
        teacher_checkpoint=args.teacher_checkpoint,
        student_checkpoint=args.student_checkpoint, batches=len(steps),
        batch_size=args.batch_size, temperature=args.temperature,
        # each batch's fraction weighted by its labelled pixels
        stats={k: sum(s[k] * s['pixels'] for s in steps) / total
               for k in steps[0] if k != 'pixels'},
        pixels_per_batch=statistics.fmean(s['pixels'] for s in steps),
        date=accuracy.utc_date())
    accuracy.emit_json_line(result, args.out)
    return result


if __name__ == '__main__':
    main()
