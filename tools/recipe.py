"""Write a distill config with the terms that suit a teacher and a student.

Usage::

    python tools/recipe.py TEACHER_CONFIG STUDENT_CONFIG \
        [--teacher-checkpoint CKPT] [--probe-size H W] -o distill.py

Both models are built on the CPU from their configs (no weights needed);
:mod:`mmkd.recipe` reads their families (dense-head family and prior
layout, two-stage R-CNN, DETR, segmentor decode heads, neck levels and
head widths) and picks the terms. The config written takes the student
config as its ``_base_``, names the teacher, and holds one comment a term
saying why, and a block listing the terms left out with the reason. See
docs/recipe.md.
"""
import argparse
import os
import os.path as osp
import sys
import textwrap
from typing import Any, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402

import mmkd  # noqa: E402,F401
from mmkd.distillers.teacher import (build_model_in_scope,  # noqa: E402
                                     resolve_config_path)
from mmkd.recipe import Recipe, read_model, recommend  # noqa: E402

WIDTH = 79


def build_model(config: str):
    """The model of ``config`` (a file or an ``mmdet::``/``mmseg::``
    path), built in the config's default scope with random weights."""
    cfg = Config.fromfile(resolve_config_path(config))
    if 'model' not in cfg:
        raise ValueError(f'{config} has no model: give a model config.')
    scope = cfg.get('default_scope') or (
        config.split('::')[0] if '::' in config else None)
    return build_model_in_scope(cfg.model, scope)


def config_reference(path: str, out_dir: str, base: bool) -> str:
    """How the written config names ``path``: package paths as they are,
    files relative to the written config (``_base_`` is resolved from the
    config's folder; a teacher config through ``{{ fileDirname }}``)."""
    if '::' in path:
        return path
    path, out_dir = osp.abspath(path), osp.abspath(out_dir)
    if osp.commonpath([path, out_dir]) == osp.dirname(osp.sep):
        return path  # nothing in common but the root: absolute
    relative = osp.relpath(path, out_dir)
    return relative if base else '{{ fileDirname }}/' + relative


def py_value(value: Any) -> str:
    """``value`` as config source: dicts as ``dict(k=v, ...)``."""
    if isinstance(value, dict):
        return 'dict(' + ', '.join(f'{k}={py_value(v)}'
                                   for k, v in value.items()) + ')'
    if isinstance(value, (list, tuple)):
        inner = ', '.join(py_value(v) for v in value)
        return f'({inner}, )' if isinstance(value, tuple) and \
            len(value) == 1 else (f'({inner})' if isinstance(value, tuple)
                                  else f'[{inner}]')
    return repr(value)


def comment(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent + '# ',
                         subsequent_indent=indent + '# ',
                         break_long_words=False, break_on_hyphens=False)


def code(text: str, indent: str, more: str = '    ') -> str:
    """``text`` wrapped at commas to the column limit."""
    return textwrap.fill(text, WIDTH, initial_indent=indent,
                         subsequent_indent=indent + more,
                         break_long_words=False, break_on_hyphens=False)


def render_config(recipe: Recipe, student_ref: str, teacher_ref: str,
                  checkpoint: Optional[str],
                  probe_size: Optional[Tuple[int, int]] = None,
                  sources: Tuple[str, str] = ('', '')) -> str:
    """The distill config's source text for ``recipe``.

    Args:
        recipe: the terms (:func:`mmkd.recipe.recommend`).
        student_ref: the ``_base_`` path of the student config.
        teacher_ref: the teacher config path as the config names it.
        checkpoint: the teacher checkpoint (None: left to fill in).
        probe_size: the Distiller's build-time probe size, if set.
        sources: the teacher and student config paths given, for the
            header.
    """
    lines = [
        '# Written by tools/recipe.py (mmkd.recipe); see docs/recipe.md.',
        comment(f'teacher: {sources[0]}: {recipe.teacher.summary()}', ''),
        comment(f'student: {sources[1]}: {recipe.student.summary()}', ''),
    ]
    for note in recipe.notes:
        lines.append(comment(note, ''))
    lines.append('#')
    lines.append('# Terms left out:')
    for item in recipe.left_out:
        lines.append(comment(str(item), '#   ').replace('#   # ', '#   '))
    lines += [
        f'_base_ = {student_ref!r}',
        "custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)",
        '',
        'model = dict(',
        '    _delete_=True,',
        "    type='mmkd.Distiller',",
        '    student={{_base_.model}},',
    ]
    if checkpoint is None:
        lines.append('    # fill in the teacher checkpoint (a path or URL)')
    lines += ['    teacher=dict(', f'        config={teacher_ref!r},',
              f'        checkpoint={checkpoint!r}),']
    lines.append('    distill=dict(')
    for term in recipe.terms:
        lines.append(comment(term.why, '        '))
        lines.append(code(f'{term.name}={py_value(term.config)},',
                          '        ', ' ' * (len(term.name) + 6)))
    lines.append('    ),')
    if probe_size is not None:
        lines.append(f'    probe_size={tuple(probe_size)!r},')
    lines.append(')')
    return '\n'.join(lines) + '\n'


def write_recipe(teacher_config: str, student_config: str, out: str,
                 teacher_checkpoint: Optional[str] = None,
                 probe_size: Optional[Sequence[int]] = None) -> Recipe:
    """Build both models, pick the terms, write the config to ``out``."""
    size = tuple(probe_size) if probe_size else (256, 256)
    teacher = read_model(build_model(teacher_config), size)
    student = read_model(build_model(student_config), size)
    recipe = recommend(teacher, student)
    out_dir = osp.dirname(osp.abspath(out))
    text = render_config(
        recipe, config_reference(student_config, out_dir, base=True),
        config_reference(teacher_config, out_dir, base=False),
        teacher_checkpoint, tuple(probe_size) if probe_size else None,
        (teacher_config, student_config))
    os.makedirs(out_dir, exist_ok=True)
    with open(out, 'w') as f:
        f.write(text)
    return recipe


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Write a distill config with the terms that suit a '
        'teacher and a student (see docs/recipe.md).')
    parser.add_argument('teacher_config')
    parser.add_argument('student_config')
    parser.add_argument('--teacher-checkpoint', default=None,
                        help='path or URL of the teacher\'s weights '
                        '(written into the config)')
    parser.add_argument('--probe-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='the Distiller\'s build-time probe size '
                        '(default: its own, 256x256)')
    parser.add_argument('-o', '--out', required=True,
                        help='the distill config to write')
    args = parser.parse_args(argv)
    recipe = write_recipe(args.teacher_config, args.student_config,
                          args.out, args.teacher_checkpoint,
                          args.probe_size)
    print(f'wrote {args.out}')
    for term in recipe.terms:
        print(f'  + {term.name} ({term.config["type"]})')
    for item in recipe.left_out:
        print(f'  - {item}')


if __name__ == '__main__':
    main()
