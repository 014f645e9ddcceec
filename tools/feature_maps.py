"""Pictures of what distillation changed inside the student.

For one image, the activation maps of a module (e.g. every FPN level) of
the teacher, the distilled student and, optionally, the student trained
alone, side by side, each with its agreement with the teacher::

    python tools/feature_maps.py DISTILL_CONFIG CHECKPOINT IMAGE \
        [--baseline STUDENT_ALONE_CKPT] [--module neck] \
        [--teacher-module neck] [--size 512 512] \
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
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402

import mmkd  # noqa: E402,F401  (registers the terms the configs name)
from mmkd.distillers.probe import make_probe_batch  # noqa: E402
from mmkd.distillers.teacher import (build_model_in_scope,  # noqa: E402
                                     resolve_model_config)
from mmkd.recorders import require_module  # noqa: E402
from mmkd.utils.checkpoint import (load_state_dict_file,  # noqa: E402
                                   load_state_dict_strictly,
                                   load_teacher_weights)

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
        inputs = model.data_preprocessor(
            dict(inputs=[image], data_samples=None), False)['inputs']
        _, samples = make_probe_batch(model, tuple(inputs.shape[-2:]),
                                      batch_size=1)
        model._forward(inputs, samples)
    finally:
        handle.remove()
    if not outputs:
        raise ValueError(f'The {name}\'s module {path!r} did not run in its '
                         'tensor-mode forward; choose a module it runs.')
    return [attention_map(x) for x in as_levels(outputs[0])]


def draw(image: torch.Tensor, rows: Dict[str, List[torch.Tensor]],
         scores: Dict[str, List[float]], module: str, out: str) -> None:
    """One row per model: the image, then one panel per level."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = 1 + max(len(maps) for maps in rows.values())
    fig, axes = plt.subplots(len(rows), cols,
                             figsize=(2.2 * cols, 2.3 * len(rows)),
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
        for c in range(cols):
            axes[r][c].axis('off')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def feature_maps(config: str, checkpoint: str, image_path: str, out: str,
                 baseline: Optional[str] = None,
                 module: Optional[str] = None,
                 teacher_module: Optional[str] = None,
                 size: Sequence[int] = (512, 512),
                 teacher_checkpoint: Optional[str] = None
                 ) -> Dict[str, List[float]]:
    """Draw the maps; returns, per student row, each level's agreement
    with the teacher (cosine similarity of the attention maps).

    Raises:
        ValueError: the config is no distill config, or a module gives no
            feature map, or the two models give different numbers of
            levels.
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
    teacher_cfg, teacher_scope = resolve_model_config(
        cfg.model.teacher.config, scope)
    teacher = build_model_in_scope(teacher_cfg, teacher_scope)
    load_teacher_weights(teacher,
                         teacher_checkpoint or cfg.model.teacher.checkpoint)
    image = read_image(image_path, tuple(size))
    rows = {'teacher': module_maps(teacher, teacher_module, image,
                                   'teacher')}
    students = {'distilled': checkpoint}
    if baseline:
        students['student alone'] = baseline
    for name, ckpt in students.items():
        student = build_model_in_scope(cfg.model.student, scope)
        load_student_weights(student, ckpt)
        rows[name] = module_maps(student, module, image, 'student')
        if len(rows[name]) != len(rows['teacher']):
            raise ValueError(
                f'The student\'s {module!r} gives {len(rows[name])} '
                f'level(s), the teacher\'s {teacher_module!r} '
                f'{len(rows["teacher"])}: name modules that match with '
                '--module and --teacher-module.')
    scores = {name: [agreement(s, t) for s, t in zip(maps, rows['teacher'])]
              for name, maps in rows.items() if name != 'teacher'}
    draw(image, rows, scores, module, out)
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
    parser.add_argument('-o', '--out', required=True, help='the PNG file')
    args = parser.parse_args(argv)
    scores = feature_maps(args.config, args.checkpoint, args.image,
                          args.out, args.baseline, args.module,
                          args.teacher_module, args.size,
                          args.teacher_checkpoint)
    print(f'wrote {args.out}')
    for name, values in scores.items():
        print(f'  {name}: cosine to the teacher per level: ' +
              ', '.join(f'{v:.3f}' for v in values))


if __name__ == '__main__':
    main()
