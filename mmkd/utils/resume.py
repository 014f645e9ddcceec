"""Pick a checkpoint to resume from, refusing a corrupt one by name.

MMEngine's ``--resume`` (``resume=True`` with no ``load_from``) loads the
checkpoint named in ``<work_dir>/last_checkpoint``; when that file was cut
short (a job killed while saving, a full disk) the run dies with an
unpickling error that names no file. These checks load the checkpoint
first (with ``weights_only=True``) and, when it is unreadable, name it and
the newest earlier checkpoint in the same folder that does load. Nothing
on disk is changed.
"""
import glob
import os.path as osp
import re
from typing import List, Optional

from .checkpoint import load_state_dict_file

_CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def checkpoints_newest_first(folder: str) -> List[str]:
    """``iter_N.pth``/``epoch_N.pth`` files in ``folder``, newest first
    (by N, then by modification time)."""
    found = []
    for path in glob.glob(osp.join(folder, '*.pth')):
        match = _CHECKPOINT_NAME.match(osp.basename(path))
        if match:
            found.append((int(match.group(2)), osp.getmtime(path), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def loading_error(path: str) -> Optional[str]:
    """Why ``path`` does not load as a checkpoint, or ``None`` if it does."""
    try:
        load_state_dict_file(path)
    except (OSError, RuntimeError) as err:
        return str(err).splitlines()[0]
    return None


def _previous_good(path: str) -> Optional[str]:
    others = [p for p in checkpoints_newest_first(osp.dirname(path) or '.')
              if osp.abspath(p) != osp.abspath(path)]
    return next((p for p in others if loading_error(p) is None), None)


def check_resume_checkpoint(path: str, chosen_by: str) -> None:
    """Raise a clear error when ``path`` cannot be resumed from.

    Args:
        path: the checkpoint that resuming would load.
        chosen_by: how it was chosen, for the message (e.g. ``'named in
            work_dirs/x/last_checkpoint'``).

    Raises:
        SystemExit: the checkpoint is missing or unreadable; the message
            names it and the newest earlier checkpoint that loads.
    """
    if not osp.isfile(path):
        error = 'the file does not exist'
    else:
        error = loading_error(path)
    if error is None:
        return
    good = _previous_good(path)
    advice = (f'Resume from the previous good checkpoint instead: '
              f'--resume {good}' if good else
              'No earlier checkpoint in that folder loads either; start '
              'again without --resume (or with --work-dir elsewhere).')
    raise SystemExit(f'Cannot resume from {path} ({chosen_by}): {error}. '
                     f'{advice} Nothing on disk was changed.')


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named in ``<work_dir>/last_checkpoint``, if any."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        return f.read().strip() or None
