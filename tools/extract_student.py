"""Turn a distiller checkpoint into a plain mmdet/mmseg checkpoint.

The output holds only the student's weights (``state_dict`` without the
``student.`` prefix) and the dataset meta, so ``tools/test.py`` of mmdet or
mmseg, ``init_detector``/``init_model`` and MMDeploy load it with no mmkd
import, and it loads with ``torch.load(weights_only=True)``.

Usage::

    python tools/extract_student.py DISTILL_CKPT OUT.pth
        [--student-config PLAIN_CONFIG] [--model NAME]

``--model`` exports another model that learned in the run, a peer of
online mutual learning (``teachers=dict(NAME=dict(role='peer', ...))``),
instead of the student.

With ``--student-config`` the extracted weights are checked against the
plain config (strict key and shape match) before anything is written.
"""
import argparse
import os
import os.path as osp
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmkd.utils import load_state_dict_file  # noqa: E402

PREFIX = 'student.'
#: where the distiller keeps the weights of its trainable slots
TRAINABLE_PREFIX = 'trainable_slots.'


def model_prefix(name: str) -> str:
    """The key prefix of model ``name`` (``'student'`` or a peer)."""
    return PREFIX if name == 'student' else f'{TRAINABLE_PREFIX}{name}.'


def trainable_slot_names(state_dict: dict) -> list:
    """The trainable slots (peers, auxiliary heads, ...) a distiller
    checkpoint holds."""
    return sorted({key[len(TRAINABLE_PREFIX):].split('.', 1)[0]
                   for key in state_dict if key.startswith(TRAINABLE_PREFIX)})


def extract_student(checkpoint: dict, prefix: str = PREFIX) -> dict:
    """The plain student checkpoint of a distiller checkpoint.

    Args:
        checkpoint: a loaded checkpoint (``state_dict`` and ``meta``).
        prefix: the student's key prefix, removed from the keys kept;
            ``''`` keeps every weight (slims a plain model's training
            checkpoint to its weights and dataset meta).

    Raises:
        ValueError: no weight has the prefix.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    student = OrderedDict((k[len(prefix):], v)
                          for k, v in state_dict.items()
                          if k.startswith(prefix))
    if not student:
        slots = trainable_slot_names(state_dict)
        if prefix.startswith(TRAINABLE_PREFIX) or slots:
            raise ValueError(
                f'No "{prefix}" weights in this checkpoint; the models it '
                f'holds besides the student: {slots}.')
        raise ValueError(
            f'No "{prefix}" weights in this checkpoint: it is not an mmkd '
            'distiller checkpoint (a plain mmdet/mmseg checkpoint needs no '
            'extraction).')
    meta = {}
    old_meta = checkpoint.get('meta', {}) or {}
    for key in ('dataset_meta', 'mmengine_version', 'epoch', 'iter'):
        if key in old_meta:
            meta[key] = old_meta[key]
    meta['extracted_by'] = 'mmkd tools/extract_student.py'
    return dict(state_dict=student, meta=meta)


def save_checkpoint(checkpoint: dict, out: str) -> None:
    """``torch.save`` to ``out`` through a temporary file, so that an
    interrupted write never leaves a half-written ``out`` behind."""
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = f'{out}.tmp'
    torch.save(checkpoint, tmp)
    os.replace(tmp, out)


def check_against_config(state_dict: dict, config: str) -> None:
    """Load ``state_dict`` strictly into the model of a plain config."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f'The student weights do not fit {config}: missing '
            f'{result.missing_keys[:10]}, unexpected '
            f'{result.unexpected_keys[:10]}.')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='distiller checkpoint')
    parser.add_argument('out', help='where to write the student checkpoint')
    parser.add_argument('--student-config',
                        help='plain mmdet/mmseg config to check against')
    parser.add_argument('--force', action='store_true',
                        help='overwrite OUT if it exists')
    parser.add_argument('--model', default='student',
                        help='the model to export: "student" (default) or '
                        'the name of a peer (online mutual learning)')
    args = parser.parse_args()
    if osp.abspath(args.out) == osp.abspath(args.checkpoint):
        raise SystemExit('OUT must differ from the input checkpoint.')
    if osp.exists(args.out) and not args.force:
        raise SystemExit(f'{args.out} exists; pass --force to overwrite.')
    try:
        plain = extract_student(load_state_dict_file(args.checkpoint),
                                model_prefix(args.model))
        if args.student_config:
            check_against_config(plain['state_dict'], args.student_config)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        raise SystemExit(f'extract_student: {err}')
    save_checkpoint(plain, args.out)
    print(f'Wrote {len(plain["state_dict"])} {args.model} tensors to '
          f'{args.out}')


if __name__ == '__main__':
    main()
