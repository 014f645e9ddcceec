"""Reuse a frozen teacher's records for inputs it has already seen.

A frozen teacher in eval mode is a fixed function of its input: once it
has run on an image, running it again on the same tensor gives the same
records. With a deterministic train pipeline (no random crop, resize or
colour jitter) every epoch shows the teacher the same inputs, so its
forward is only needed in the first epoch; afterwards the distiller takes
each sample's records from memory. This is the offline half of FKD (Shen &
Xing, "A Fast Knowledge Distillation Framework for Visual Recognition",
ECCV 2022), which stores a teacher's soft labels once instead of running
the teacher every step; here the records are kept exactly, per sample.

Samples are keyed by a hash of the teacher's input tensor itself (after
its own preprocessing), so a changed input can never be given a stale
record: it is a miss, and the teacher runs on it. A random pipeline would
make every step a miss and the cache grow without reuse; the cache
therefore counts the different inputs of each image (``img_path``) and
stops with an error when one image reaches the teacher in more than
:data:`MAX_VARIANTS` forms (a horizontal flip gives two).

Records are split into samples along their first dimension and kept on
the CPU; only batch-first tensors (features, dense head maps, segmentation
logits and the recorded calls that carry them) can be split, which the
distiller checks on its build-time probe. Memory: the bytes of one
sample's records (:attr:`TeacherOutputCache.bytes_per_sample`) times the
number of training images.
"""
import hashlib
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.structures import BaseDataElement

from ..recorders import MethodCall, ReadSpec, recorded_tensors

#: how many different inputs one image may give the teacher (a
#: horizontal flip gives two) before the pipeline counts as random
MAX_VARIANTS = 2

Records = Dict[ReadSpec, List[Any]]


def check_batch_first(value: Any, batch_size: int, where: str) -> None:
    """Raise unless every tensor in ``value`` has the batch as its first
    dimension, so that the record can be split into samples.

    Args:
        value: one recorded value (tensor, nested tuples/lists/dicts,
            :class:`~mmkd.recorders.MethodCall`).
        batch_size: the batch's size.
        where: the record, for the message.

    Raises:
        ValueError: a tensor with another first dimension, or a value of a
            kind that cannot be split (e.g. data samples).
    """
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 or value.shape[0] != batch_size:
            raise ValueError(
                f'cache_outputs: the teacher record {where} holds a tensor '
                f'of shape {tuple(value.shape)}, not batch-first (batch '
                f'{batch_size}), so it cannot be kept per sample. Cache a '
                'teacher whose terms read features, dense head maps or '
                'logits, or remove cache_outputs from its config.')
    elif isinstance(value, MethodCall):
        check_batch_first((value.args, value.kwargs, value.result),
                          batch_size, f'{where} ({value.name})')
    elif isinstance(value, dict):
        for key, item in value.items():
            check_batch_first(item, batch_size, f'{where}[{key!r}]')
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_batch_first(item, batch_size, where)
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise ValueError(
            f'cache_outputs: the teacher record {where} holds a '
            f'{type(value).__name__}, which cannot be split into samples. '
            'Remove cache_outputs from this teacher\'s config.')


def take_sample(value: Any, index: int,
                memo: Optional[Dict[int, torch.Tensor]] = None) -> Any:
    """Sample ``index`` of a batch-first record, as a batch of one, on the
    CPU (copied, so that it keeps no reference to the batch).

    ``memo`` (``{id(batch tensor): sample}``), shared by the records of one
    sample, keeps one copy of a tensor that several records hold (a neck's
    outputs are also its head's call arguments)."""
    memo = {} if memo is None else memo
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = value[index:index + 1].detach().to(
                'cpu', copy=True)
        return memo[id(value)]
    if isinstance(value, MethodCall):
        return MethodCall(value.owner, value.name,
                          take_sample(value.args, index, memo),
                          take_sample(value.kwargs, index, memo),
                          take_sample(value.result, index, memo), value.key)
    if isinstance(value, dict):
        return {key: take_sample(item, index, memo)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(take_sample(item, index, memo) for item in value)
    return value


def stack_samples(samples: Sequence[Any], device: torch.device,
                  memo: Optional[Dict[tuple, torch.Tensor]] = None) -> Any:
    """The batch of :func:`take_sample` records, on ``device``: tensors
    concatenated along the first dimension; everything else as in the
    first sample. ``memo``, shared by the records of one batch, stacks a
    tensor the samples share between records once, so the batch shares it
    as the teacher's own records did."""
    memo = {} if memo is None else memo
    first = samples[0]
    if isinstance(first, torch.Tensor):
        key = tuple(id(sample) for sample in samples)
        if key not in memo:
            memo[key] = torch.cat(list(samples)).to(device)
        return memo[key]
    if isinstance(first, MethodCall):
        return MethodCall(
            first.owner, first.name,
            stack_samples([c.args for c in samples], device, memo),
            stack_samples([c.kwargs for c in samples], device, memo),
            stack_samples([c.result for c in samples], device, memo),
            first.key)
    if isinstance(first, dict):
        return {key: stack_samples([s[key] for s in samples], device, memo)
                for key in first}
    if isinstance(first, (list, tuple)):
        return type(first)(stack_samples([s[i] for s in samples], device,
                                         memo)
                           for i in range(len(first)))
    return first


def input_key(image: torch.Tensor) -> bytes:
    """A key of one input tensor: a hash of its bytes, shape and dtype."""
    image = image.detach().to('cpu').contiguous()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f'{tuple(image.shape)}{image.dtype}'.encode())
    digest.update(image.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def record_bytes(value: Any) -> int:
    """The bytes of the distinct tensors in a record."""
    tensors = {id(t): t for t in recorded_tensors(value)}
    return sum(t.numel() * t.element_size() for t in tensors.values())


class TeacherOutputCache:
    """One frozen teacher's records, per sample (see the module's notes).

    Args:
        slot_name: the teacher's slot name, for the messages.

    Attributes:
        hits: samples whose records came from the cache.
        misses: samples the teacher ran on.
        bytes_per_sample: the bytes of one sample's records (set on the
            first store).

    Examples:
        >>> model = dict(
        ...     type='mmkd.Distiller',
        ...     student={{_base_.model}},
        ...     teacher=dict(config='teacher.py', checkpoint='teacher.pth',
        ...                  cache_outputs=True),
        ...     distill=dict(fpn=dict(type='FeatureImitation',
        ...                           student='neck', teacher='neck')))
    """

    def __init__(self, slot_name: str) -> None:
        self.slot_name = slot_name
        self.hits = 0
        self.misses = 0
        self.bytes_per_sample: Optional[int] = None
        self._entries: Dict[bytes, Records] = {}
        self._variants: Dict[str, set] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self, inputs: torch.Tensor,
             data_samples: Sequence[BaseDataElement]) -> List[bytes]:
        """The key of each sample of a batch; checks that no image has
        reached the teacher in more than :data:`MAX_VARIANTS` forms."""
        keys = [input_key(image) for image in inputs]
        for key, sample in zip(keys, data_samples):
            path = sample.metainfo.get('img_path') if isinstance(
                sample, BaseDataElement) else None
            if path is None or key in self._entries:
                continue
            variants = self._variants.setdefault(path, set())
            variants.add(key)
            if len(variants) > MAX_VARIANTS:
                raise RuntimeError(
                    f'Teacher {self.slot_name!r} has cache_outputs=True, but '
                    f'the image {path!r} has reached it as {len(variants)} '
                    'different inputs: the train pipeline is random (a '
                    'random resize, crop or colour change), so cached '
                    'outputs would never be reused while the cache kept '
                    'growing. Remove cache_outputs from the teacher\'s '
                    'config, or train on a deterministic pipeline.')
        return keys

    def missing(self, keys: Sequence[bytes]) -> List[int]:
        """The batch indices whose records are not cached (a key repeated
        in the batch is run once)."""
        seen, indices = set(), []
        for i, key in enumerate(keys):
            if key not in self._entries and key not in seen:
                seen.add(key)
                indices.append(i)
        return indices

    def store(self, keys: Sequence[bytes], records: Records) -> None:
        """Keep the records of a batch whose samples have ``keys``."""
        for i, key in enumerate(keys):
            memo = {}
            self._entries[key] = {
                spec: [take_sample(value, i, memo) for value in values]
                for spec, values in records.items()}
        if self.bytes_per_sample is None and keys:
            self.bytes_per_sample = record_bytes(
                list(self._entries[keys[0]].values()))

    def batch(self, keys: Sequence[bytes], device: torch.device,
              fresh: int = 0) -> Records:
        """The records of a batch from the cache, on ``device``;
        ``fresh``: how many of its samples the teacher has just run on."""
        self.misses += fresh
        self.hits += len(keys) - fresh
        entries = [self._entries[key] for key in keys]
        memo = {}
        return {spec: [stack_samples([e[spec][i] for e in entries], device,
                                     memo)
                       for i in range(len(values))]
                for spec, values in entries[0].items()}
