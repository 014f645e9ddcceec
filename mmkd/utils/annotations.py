"""Name the annotation file behind a bare ``JSONDecodeError``.

mmdet's ``CocoDataset`` and ``CocoMetric`` parse their ``ann_file`` with
pycocotools, which lets ``json.JSONDecodeError`` through without saying
which file was being read. :func:`annotation_errors_named` re-raises such
an error with the file's path, found by parsing the config's annotation
files again (only on the error path, so a healthy run pays nothing).
"""
import json
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple


def annotation_files(cfg: object,
                     data_root: Optional[str] = None) -> List[str]:
    """Every JSON ``ann_file`` a config names, resolved against the
    ``data_root`` of its dataset as MMEngine's ``BaseDataset`` does."""
    found: List[str] = []
    if isinstance(cfg, dict):
        data_root = cfg.get('data_root', data_root)
        ann_file = cfg.get('ann_file')
        if isinstance(ann_file, str) and ann_file.endswith('.json'):
            if data_root and not osp.isabs(ann_file):
                ann_file = osp.join(data_root, ann_file)
            found.append(ann_file)
        for value in cfg.values():
            found += annotation_files(value, data_root)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found += annotation_files(value, data_root)
    return list(dict.fromkeys(found))


def unreadable_json(paths: List[str]) -> List[Tuple[str, str]]:
    """``(path, reason)`` for each existing file that is not valid JSON."""
    bad = []
    for path in paths:
        if not osp.isfile(path):
            continue
        try:
            with open(path, encoding='utf-8') as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            bad.append((path, str(err)))
    return bad


@contextmanager
def annotation_errors_named(cfg: dict) -> Iterator[None]:
    """Re-raise a ``JSONDecodeError`` as a ``SystemExit`` naming the file.

    Args:
        cfg: the runner config (its dataloaders and evaluators are
            searched for ``ann_file``).
    """
    try:
        yield
    except json.JSONDecodeError as err:
        bad = unreadable_json(annotation_files(dict(cfg)))
        if not bad:
            raise
        listed = '; '.join(f'{path}: {reason}' for path, reason in bad)
        raise SystemExit(
            f'Corrupt annotation file(s), not valid JSON: {listed}. '
            'Restore or regenerate the file (a COCO annotation file is one '
            'JSON object with "images", "annotations" and "categories").'
        ) from err
