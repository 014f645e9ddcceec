"""Pictures of what distillation changed inside the student.

For one image, the activation maps of a module (e.g. every FPN level) of
the teacher, the distilled student and, optionally, the student trained
alone, side by side, each with its agreement with the teacher and its
predictions (boxes, or a label map); given the image's annotations, also
the weights of every term that weighs locations (FGFI's anchor mask,
FGD's foreground, a box mask, LD's main or valuable localization region)
in a loss step on that image::

    python tools/feature_maps.py DISTILL_CONFIG CHECKPOINT IMAGE \
        [--baseline STUDENT_ALONE_CKPT] [--module neck] \
        [--teacher-module neck] [--size 512 512] \
        [--annotations COCO_JSON] [--score-thr 0.3] \
        [--teacher-checkpoint CKPT] -o maps.png

``DISTILL_CONFIG`` is the mmkd config the student was trained with: it
names the teacher (config and checkpoint) and the student config.
``CHECKPOINT`` is a training checkpoint of that config (the student's
weights under ``student.``) or an exported student
(``tools/extract_student.py``); ``--baseline`` a checkpoint of the same
student trained without distillation. ``--module`` defaults to what the
config's first distillation term reads from the student (and
``--teacher-module`` to what it reads from the teacher).

Each map is the channel mean of the squared activations, ``mean_c x_c^2``
(the spatial attention of Zagoruyko & Komodakis 2017), scaled to [0, 1]
per panel; a panel's title gives its agreement with the teacher's map of
the same level: the cosine similarity of the two attention maps (the
student's resized to the teacher's where they differ), 1 when the student
puts its activation where the teacher does. The numbers are also printed.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402

import mmkd  # noqa: E402,F401  (registers the terms the configs name)
from mmkd.distillers.probe import make_probe_batch  # noqa: E402
from mmkd.distillers.teacher import build_model_in_scope  # noqa: E402
from mmkd.recorders import require_module  # noqa: E402
from mmkd.term_weights import term_weight_maps  # noqa: E402
from mmkd.utils.model_kind import is_segmentor  # noqa: E402
from mmkd.utils.checkpoint import (load_state_dict_file,  # noqa: E402
                                   load_state_dict_strictly)

STUDENT_PREFIX = 'student.'


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """``mean_c x_c^2`` of the first image: an ``(H, W)`` map."""
    return feature[0].float().pow(2).mean(0)


def agreement(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Cosine similarity of two attention maps, the student's resized to
    the teacher's size where they differ."""
    if student.shape != teacher.shape:
        student = F.interpolate(student[None, None], size=teacher.shape,
                                mode='bilinear', align_corners=False)[0, 0]
    return float(F.cosine_similarity(student.flatten(), teacher.flatten(),
                                     dim=0))


def as_levels(output) -> List[torch.Tensor]:
    """A module output as a list of ``(N, C, H, W)`` maps (an FPN's tuple
    of levels, or one map)."""
    items = output if isinstance(output, (tuple, list)) else [output]
    levels = [x for x in items if isinstance(x, torch.Tensor) and x.dim() == 4]
    if not levels:
        raise ValueError(
            'The module gives no (N, C, H, W) feature map (it gave '
            f'{type(output).__name__}); choose a backbone stage, a neck or '
            'a conv layer with --module.')
    return levels


def default_modules(cfg: Config) -> Tuple[str, str]:
    """What the config's first distillation term reads from the student
    and from the teacher."""
    for term in (cfg.model.get('distill') or {}).values():
        student = term.get('student')
        if isinstance(student, str):
            teacher = term.get('teacher', student)
            return student, teacher if isinstance(teacher, str) else student
    raise ValueError('The config has no distillation term that reads a '
                     'module by path; name one with --module.')


def load_student_weights(model: nn.Module, checkpoint: str) -> None:
    """A training checkpoint's ``student.`` weights, or an exported
    student's, strictly."""
    loaded = load_state_dict_file(checkpoint, owner='student')
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) \
        else {}
    prefixed = any(k.startswith(STUDENT_PREFIX) for k in state)
    load_state_dict_strictly(model, loaded, checkpoint,
                             strip_prefix=STUDENT_PREFIX if prefixed
                             else None, owner='student')


def read_image(path: str, size: Tuple[int, int]) -> torch.Tensor:
    """The image as a ``(3, H, W)`` uint8 BGR tensor resized to ``size``
    (as mmdet/mmseg's loading and resize give it to the preprocessor)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'Cannot read the image {path!r}: give an '
                                'existing image file.')
    image = cv2.resize(image, (size[1], size[0]),
                       interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def image_ground_truth(annotations: str, image_path: str,
                       scale: Tuple[float, float]
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The image's boxes (x1, y1, x2, y2, scaled by ``scale`` = (sx, sy))
    and labels (the index of the category among the file's categories
    sorted by id) from a COCO annotation file, found by file name."""
    with open(annotations) as f:
        coco = json.load(f)
    name = osp.basename(image_path)
    images = [im for im in coco.get('images', [])
              if osp.basename(im.get('file_name', '')) == name]
    if not images:
        known = [osp.basename(im.get('file_name', ''))
                 for im in coco.get('images', [])[:3]]
        raise ValueError(
            f'{annotations} has no image named {name!r} (its images are '
            f'named like {known}); give the annotation file of the image\'s '
            'data set.')
    labels = {c['id']: i for i, c in enumerate(
        sorted(coco.get('categories', []), key=lambda c: c['id']))}
    sx, sy = scale
    boxes, classes = [], []
    for ann in coco.get('annotations', []):
        if ann.get('image_id') != images[0]['id'] or ann.get('iscrowd'):
            continue
        x, y, w, h = ann['bbox']
        boxes.append([x * sx, y * sy, (x + w) * sx, (y + h) * sy])
        classes.append(labels.get(ann['category_id'], 0))
    return (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            torch.tensor(classes, dtype=torch.long))


def model_batch(model: nn.Module, image: torch.Tensor,
                boxes: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, List]:
    """The image preprocessed as ``model`` takes it, with data samples
    (the image's boxes and labels as ground truth when given)."""
    _, samples = make_probe_batch(model, tuple(image.shape[-2:]),
                                  batch_size=1)
    if boxes is not None:
        from mmengine.structures import InstanceData
        extra = set(samples[0].gt_instances.keys()) - {'bboxes', 'labels'}
        if extra or 'gt_sem_seg' in samples[0] or 'proposals' in samples[0]:
            raise ValueError(
                f'{type(model).__name__} trains on more ground truth than '
                'boxes (instance masks, a semantic map or proposals); the '
                'term masks are drawn for box detectors only: leave out '
                '--annotations.')
        samples[0].gt_instances = InstanceData(bboxes=boxes[0],
                                               labels=boxes[1])
    data = model.data_preprocessor(dict(inputs=[image],
                                        data_samples=samples), False)
    return data['inputs'], data['data_samples']


@torch.no_grad()
def module_maps(model: nn.Module, path: str, image: torch.Tensor,
                name: str) -> List[torch.Tensor]:
    """The attention maps of ``model``'s module ``path`` on ``image``."""
    module = require_module(dict(model.named_modules()), path, name)
    outputs = []
    handle = module.register_forward_hook(
        lambda mod, args, out: outputs.append(out))
    try:
        model.eval()
        model._forward(*model_batch(model, image))
    finally:
        handle.remove()
    if not outputs:
        raise ValueError(f'The {name}\'s module {path!r} did not run in its '
                         'tensor-mode forward; choose a module it runs.')
    return [attention_map(x) for x in as_levels(outputs[0])]


@torch.no_grad()
def predictions(model: nn.Module, image: torch.Tensor,
                score_thr: float) -> Union[torch.Tensor, np.ndarray]:
    """A detector's boxes scoring at least ``score_thr`` as an (K, 6)
    array of x1, y1, x2, y2, score, label; a segmentor's (H, W) label
    map."""
    model.eval()
    if is_segmentor(model):
        result = model.predict(*model_batch(model, image))[0]
        return result.pred_sem_seg.data[0].cpu()
    result = model.predict(*model_batch(model, image), rescale=False)[0]
    pred = result.pred_instances
    keep = pred.scores >= score_thr
    return torch.cat([pred.bboxes[keep], pred.scores[keep, None],
                      pred.labels[keep, None].float()], 1).cpu().numpy()


def _show_predictions(ax, rgb: np.ndarray,
                      pred: Union[torch.Tensor, np.ndarray]) -> str:
    """Draw boxes on the image, or a label map; returns the title."""
    if isinstance(pred, torch.Tensor):
        ax.imshow(pred.numpy(), cmap='tab20', vmin=0, vmax=19,
                  interpolation='nearest')
        return 'predicted labels'
    ax.imshow(rgb)
    for x1, y1, x2, y2, score, label in pred:
        ax.add_patch(_rectangle(x1, y1, x2, y2, 'lime'))
        ax.text(x1, y1, f'{int(label)} {score:.2f}', color='lime',
                fontsize=6, va='bottom')
    return f'{len(pred)} boxes'


def _rectangle(x1, y1, x2, y2, color: str):
    import matplotlib.patches as patches
    return patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                             edgecolor=color, linewidth=1)


def draw(image: torch.Tensor, rows: Dict[str, List[torch.Tensor]],
         scores: Dict[str, List[float]], module: str, out: str,
         preds: Optional[Dict[str, object]] = None,
         masks: Optional[Dict[str, List[torch.Tensor]]] = None,
         boxes: Optional[torch.Tensor] = None) -> None:
    """One row per model: the image, one panel per level and its
    predictions; then one row per term that weighs locations: the image
    with its ground-truth boxes, then the term's weights per level."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    preds, masks = preds or {}, masks or {}
    levels = max([len(m) for m in rows.values()] +
                 [len(m) for m in masks.values()])
    cols = 1 + levels + (1 if preds else 0)
    fig, axes = plt.subplots(len(rows) + len(masks), cols,
                             figsize=(2.2 * cols,
                                      2.3 * (len(rows) + len(masks))),
                             squeeze=False)
    rgb = image.permute(1, 2, 0).numpy()[..., ::-1]
    for r, (name, maps) in enumerate(rows.items()):
        axes[r][0].imshow(rgb)
        axes[r][0].set_title(name, fontsize=9)
        for c, attention in enumerate(maps, start=1):
            a = attention.numpy()
            a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
            axes[r][c].imshow(a, cmap='inferno', vmin=0, vmax=1)
            title = f'{module}[{c - 1}] {a.shape[0]}x{a.shape[1]}'
            if name != 'teacher':
                title += f'\ncos {scores[name][c - 1]:.2f} to teacher'
            axes[r][c].set_title(title, fontsize=8)
        if name in preds:
            axes[r][-1].set_title(
                f'{name}: ' + _show_predictions(axes[r][-1], rgb,
                                                preds[name]), fontsize=8)
    for r, (term, weights) in enumerate(masks.items(), start=len(rows)):
        axes[r][0].imshow(rgb)
        for x1, y1, x2, y2 in (boxes if boxes is not None else []):
            axes[r][0].add_patch(_rectangle(x1, y1, x2, y2, 'cyan'))
        axes[r][0].set_title(f'term {term!r}: gt boxes', fontsize=8)
        for c, weight in enumerate(weights, start=1):
            w = weight.numpy()
            axes[r][c].imshow(w, cmap='viridis', vmin=0,
                              vmax=max(float(w.max()), 1e-12),
                              interpolation='nearest')
            axes[r][c].set_title(
                f'{term} weights [{c - 1}]\n{int((w > 0).sum())} of '
                f'{w.size} locations', fontsize=8)
    for row in axes:
        for ax in row:
            ax.axis('off')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def feature_maps(config: str, checkpoint: str, image_path: str, out: str,
                 baseline: Optional[str] = None,
                 module: Optional[str] = None,
                 teacher_module: Optional[str] = None,
                 size: Sequence[int] = (512, 512),
                 teacher_checkpoint: Optional[str] = None,
                 annotations: Optional[str] = None,
                 score_thr: float = 0.3) -> Dict[str, List[float]]:
    """Draw the maps, the models' predictions and, given the image's
    annotations, the weights of the terms that weigh locations; returns,
    per student row, each level's agreement with the teacher (cosine
    similarity of the attention maps).

    Raises:
        ValueError: the config is no distill config, or a module gives no
            feature map, or the two models give different numbers of
            levels, or the annotations do not hold the image (or are
            given for a segmentor).
        KeyError: a module path the model does not have (with the nearest
            valid paths).
    """
    cfg = Config.fromfile(config)
    if 'student' not in cfg.model or 'teacher' not in cfg.model:
        raise ValueError(f'{config} is not a distill config with one '
                         'teacher (model.student and model.teacher).')
    scope = cfg.get('default_scope')
    default_student, default_teacher = default_modules(cfg) \
        if module is None else (module, module)
    module = module or default_student
    teacher_module = teacher_module or (default_teacher if
                                        module == default_student else module)
    raw = cv2.imread(image_path, cv2.IMREAD_COLOR)
    image = read_image(image_path, tuple(size))
    if teacher_checkpoint:
        cfg.model.teacher.checkpoint = teacher_checkpoint
    # the teacher and the distilled student as the distiller builds them
    # (its terms are needed for their weights)
    distiller = build_model_in_scope(cfg.model, scope)
    if annotations and is_segmentor(distiller.student):
        raise ValueError(
            '--annotations gives ground-truth boxes, which only '
            'detectors\' terms weigh locations by; leave it out for a '
            'segmentor.')
    load_student_weights(distiller.student, checkpoint)
    models = {'teacher': (distiller.teacher, teacher_module),
              'distilled': (distiller.student, module)}
    if baseline:
        alone = build_model_in_scope(cfg.model.student, scope)
        load_student_weights(alone, baseline)
        models['student alone'] = (alone, module)
    rows = {}
    for name, (model, path) in models.items():
        rows[name] = module_maps(model, path, image,
                                 'teacher' if name == 'teacher'
                                 else 'student')
        if len(rows[name]) != len(rows['teacher']):
            raise ValueError(
                f'The student\'s {module!r} gives {len(rows[name])} '
                f'level(s), the teacher\'s {teacher_module!r} '
                f'{len(rows["teacher"])}: name modules that match with '
                '--module and --teacher-module.')
    preds = {name: predictions(model, image, score_thr)
             for name, (model, _) in models.items()}
    masks, boxes = {}, None
    if annotations:
        boxes = image_ground_truth(
            annotations, image_path,
            (size[1] / raw.shape[1], size[0] / raw.shape[0]))
        distiller.eval()
        masks = term_weight_maps(
            distiller, *model_batch(distiller.student, image, boxes))
        boxes = boxes[0]
    scores = {name: [agreement(s, t) for s, t in zip(maps, rows['teacher'])]
              for name, maps in rows.items() if name != 'teacher'}
    draw(image, rows, scores, module, out, preds, masks, boxes)
    return scores


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Draw the teacher\'s and the students\' activation '
        'maps of a module on one image.')
    parser.add_argument('config', help='the distill config')
    parser.add_argument('checkpoint',
                        help='its training checkpoint or the exported '
                        'student')
    parser.add_argument('image')
    parser.add_argument('--baseline',
                        help='a checkpoint of the student trained alone')
    parser.add_argument('--module', help='the student module (default: '
                        'what the first term reads)')
    parser.add_argument('--teacher-module',
                        help='the teacher module (default: as --module)')
    parser.add_argument('--size', type=int, nargs=2, default=(512, 512),
                        metavar=('H', 'W'))
    parser.add_argument('--teacher-checkpoint',
                        help='instead of the config\'s teacher checkpoint')
    parser.add_argument('--annotations',
                        help='a COCO annotation file holding the image '
                        '(found by file name): its boxes are the ground '
                        'truth of one loss step, and each term that weighs '
                        'locations (FGFI, FGD, a box mask, LD regions) gets '
                        'a row of its weights (detectors only)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='boxes drawn from this score (default 0.3)')
    parser.add_argument('-o', '--out', required=True, help='the PNG file')
    args = parser.parse_args(argv)
    scores = feature_maps(args.config, args.checkpoint, args.image,
                          args.out, args.baseline, args.module,
                          args.teacher_module, args.size,
                          args.teacher_checkpoint, args.annotations,
                          args.score_thr)
    print(f'wrote {args.out}')
    for name, values in scores.items():
        print(f'  {name}: cosine to the teacher per level: ' +
              ', '.join(f'{v:.3f}' for v in values))


if __name__ == '__main__':
    main()
