"""Checkpoint loading that keeps ``torch.load(weights_only=True)`` on.

PyTorch >= 2.6 unpickles checkpoints with ``weights_only=True`` by default,
and MMEngine 0.10.7 does not say otherwise, so its own resume checkpoints
(``HistoryBuffer`` in the message hub, NumPy arrays and scalars) fail to
load. Rather than turning the safety off (which would also let a teacher
checkpoint downloaded from the internet run arbitrary code), we allow-list
exactly the types MMEngine writes.
"""
import os.path as osp
import pickle
import re
import socket
import urllib.error
from collections import OrderedDict
from urllib.parse import urlparse
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.utils import digit_version

_ALLOWED = False


def _numpy_safe_globals() -> List[object]:
    """Types NumPy needs to unpickle arrays, dtypes and scalars."""
    try:  # NumPy >= 2 moved the private module
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray
    types: List[object] = [multiarray._reconstruct, multiarray.scalar,
                           np.ndarray, np.dtype]
    dtypes = getattr(np, 'dtypes', None)  # NumPy >= 1.25
    if dtypes is not None:
        types += [getattr(dtypes, name) for name in dir(dtypes)
                  if name.endswith('DType')]
    return types


# HistoryBuffer's default statistics, which MMEngine pickles with every
# buffer of the message hub
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_statistic(owner: type, name: str) -> object:
    """What ``builtins.getattr`` means in a weights-only load.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods, which
    pickle protocol 2 (``torch.save``'s) writes as
    ``getattr(HistoryBuffer, 'mean')``. Allow-listing ``getattr`` itself
    would let a checkpoint reach any attribute of any allowed object; this
    stand-in resolves exactly those four look-ups and refuses every other.

    Raises:
        pickle.UnpicklingError: any other look-up.
    """
    from mmengine.logging import HistoryBuffer
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'Refused getattr({getattr(owner, "__name__", owner)!r}, {name!r}) '
        'in a weights-only load: mmkd resolves getattr only for the '
        f'statistics {_HISTORY_BUFFER_STATISTICS} of MMEngine\'s '
        'HistoryBuffer.')


def allow_mmengine_checkpoint_types() -> None:
    """Make MMEngine checkpoints load with ``weights_only=True``.

    Allow-lists the data types MMEngine puts in checkpoints (the message
    hub's ``HistoryBuffer`` with its statistics methods, see
    :func:`history_buffer_statistic`; NumPy arrays, dtypes and scalars), so
    resume checkpoints and teachers trained by plain mmdet/mmseg load
    safely. Idempotent. PyTorch < 2.4 has no allow-list (and loads with
    ``weights_only=False`` by default); 2.4 and 2.5 cannot allow-list under
    another name, so there the statistics stand-in is left out.
    """
    global _ALLOWED
    if _ALLOWED:
        return
    _ALLOWED = True
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return
    from mmengine.logging import HistoryBuffer
    add_safe_globals([HistoryBuffer, OrderedDict, *_numpy_safe_globals()])
    if digit_version(torch.__version__) >= digit_version('2.6.0'):
        add_safe_globals([(history_buffer_statistic, 'builtins.getattr')])


def is_url(path: str) -> bool:
    """Whether ``path`` is an http(s) URL that :func:`load_state_dict_file`
    downloads."""
    return re.match(r'^https?://', path) is not None


def hub_cache_path(url: str) -> str:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``'s file
    (``<torch hub dir>/checkpoints/<file name>``)."""
    return osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))


def download_error(url: str, owner: str, err: BaseException) -> str:
    """The message for a checkpoint URL that could not be downloaded: who
    needs it, the URL, the cache path looked in, and how to go on
    offline."""
    cache = hub_cache_path(url)
    return (
        f'Could not download the {owner} checkpoint {url}: '
        f'{type(err).__name__}: {err}. It was not in the cache either: '
        f'{cache}. On a machine without internet, download the file '
        f'elsewhere (e.g. `wget {url}`) and copy it to {cache}, or set '
        f'{owner}.checkpoint to a local file.')


def load_state_dict_file(path: str,
                         map_location: str = 'cpu',
                         owner: str = 'teacher') -> Dict[str, object]:
    """Load a checkpoint file or URL with ``weights_only=True``.

    Args:
        path: local file path or ``http(s)://`` URL (downloaded once into
            the torch hub cache).
        map_location: passed to :func:`torch.load`.
        owner: how the config names the model that needs the checkpoint
            (``'teacher'``, ``'teachers.r101'``), for the messages.

    Returns:
        The unpickled checkpoint (usually a dict with ``state_dict``).

    Raises:
        FileNotFoundError: the local file does not exist.
        ConnectionError: the URL could not be downloaded (no network, an
            HTTP error) and is not in the torch hub cache; the message
            names ``owner``, the URL and the cache path.
        RuntimeError: the file is not a checkpoint PyTorch can read safely.
    """
    allow_mmengine_checkpoint_types()
    if is_url(path):
        try:
            return torch.hub.load_state_dict_from_url(
                path, map_location=map_location, weights_only=True)
        except (urllib.error.URLError, socket.timeout,
                ConnectionError) as err:
            raise ConnectionError(download_error(path, owner, err)) from err
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint file not found: {path!r}. Give an existing local '
            'path or an http(s) URL.')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt or unsafe pickle
        hint = 'Is it a complete PyTorch/MMEngine checkpoint?'
        if 'global' in str(err).lower() or 'getattr' in str(err):
            hint = ('It holds objects other than weights and MMEngine\'s '
                    'training state, which mmkd does not unpickle. If you '
                    'trust the file, keep only its weights: '
                    'torch.save({"state_dict": torch.load(IN, '
                    'weights_only=False)["state_dict"]}, OUT).')
        raise RuntimeError(
            f'Could not load checkpoint {path!r} with weights_only=True: '
            f'{err}\n{hint}') from err


def _extract_state_dict(checkpoint: object, source: str) -> Dict[str, object]:
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not all(
            isinstance(k, str) for k in checkpoint):
        raise RuntimeError(f'{source!r} holds no state dict.')
    return OrderedDict(
        (re.sub(r'^module\.', '', key), value)
        for key, value in checkpoint.items())


def _preview(keys: List[str], limit: int = 10) -> str:
    shown = ', '.join(keys[:limit])
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return f'{shown}{more}'


def load_teacher_weights(model: nn.Module,
                         checkpoint: str,
                         strip_prefix: Optional[str] = None,
                         owner: str = 'teacher') -> None:
    """Load ``checkpoint`` into ``model`` strictly, with a readable error.

    Args:
        model: the teacher model built from its config.
        checkpoint: local path or URL.
        strip_prefix: optional key prefix to remove first (e.g.
            ``'student.'`` to use an mmkd checkpoint as a teacher).
        owner: how the config names the model (``'teacher'``,
            ``'teachers.r101'``), for the messages.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        RuntimeError: keys or shapes do not fit the model; the message
            lists the missing and unexpected keys.
    """
    load_state_dict_strictly(
        model, load_state_dict_file(checkpoint, owner=owner), checkpoint,
        strip_prefix, owner)


def load_state_dict_strictly(model: nn.Module, checkpoint: object,
                             source: str,
                             strip_prefix: Optional[str] = None,
                             owner: str = 'teacher') -> None:
    """:func:`load_teacher_weights` from a checkpoint already loaded
    (:func:`load_state_dict_file`), for a caller that reads it too.

    Args:
        model: the model built from its config.
        checkpoint: the loaded checkpoint (with or without MMEngine's
            ``state_dict`` wrapper).
        source: where it came from, for the messages.
        strip_prefix: optional key prefix to remove first; keys without
            it are dropped.
        owner: how the config names the model, for the messages.

    Raises:
        RuntimeError: it holds no state dict, or keys or shapes do not fit
            the model.
    """
    state_dict = _extract_state_dict(checkpoint, source)
    if strip_prefix:
        state_dict = OrderedDict(
            (k[len(strip_prefix):], v) for k, v in state_dict.items()
            if k.startswith(strip_prefix))
    own = model.state_dict()
    # torch fills in a missing BatchNorm ``num_batches_tracked`` itself
    missing = sorted(k for k in set(own) - set(state_dict)
                     if not k.endswith('num_batches_tracked'))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in set(own) & set(state_dict)
        if hasattr(state_dict[k], 'shape')
        and tuple(state_dict[k].shape) != tuple(own[k].shape))
    if missing or unexpected or mismatched:
        lines = [f'The {owner} checkpoint {source!r} does not fit the '
                 f'{owner}\'s config.']
        if missing:
            lines.append(f'  missing keys ({len(missing)}): '
                         f'{_preview(missing)}')
        if unexpected:
            lines.append(f'  unexpected keys ({len(unexpected)}): '
                         f'{_preview(unexpected)}')
        if mismatched:
            lines.append(f'  shape mismatches ({len(mismatched)}): '
                         f'{_preview(mismatched, 5)}')
        lines.append(f'Check that the {owner}\'s config is the config '
                     'this checkpoint was trained with.')
        raise RuntimeError('\n'.join(lines))
    model.load_state_dict(state_dict, strict=True)
