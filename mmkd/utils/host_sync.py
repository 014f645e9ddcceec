"""Count the operations of a step that make the host wait for the device.

On a GPU, an operation whose result decides Python control flow or the
size of a tensor (``.item()``, ``nonzero``, boolean-mask indexing,
``unique``, ``masked_select``) copies a value to the host and so waits for
every kernel queued before it. The same operations run on the CPU, where
the profiler sees them: counting them there is a device-free proxy that a
test can keep from growing.
"""
from collections import Counter
from typing import Callable, Dict

import torch
from torch.profiler import ProfilerActivity, profile

#: ATen operations that copy a device value to the host (``.item()`` and
#: ``if tensor:`` end in ``_local_scalar_dense``; boolean indexing and
#: ``torch.where(cond)`` in ``nonzero``)
HOST_SYNC_OPS = frozenset({
    'aten::_local_scalar_dense',
    'aten::nonzero',
    'aten::nonzero_static',
    'aten::masked_select',
    'aten::_unique',
    'aten::_unique2',
    'aten::unique_dim',
    'aten::unique_consecutive',
})


def count_host_syncs(step: Callable[[], object]) -> Dict[str, int]:
    """Run ``step`` once under the CPU profiler and count, per operation
    name, the host-synchronising operations it ran.

    Examples:
        >>> counts = count_host_syncs(lambda: model.loss(inputs, samples))
        >>> sum(counts.values())
    """
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return dict(Counter(e.name for e in prof.events()
                        if e.name in HOST_SYNC_OPS))


def added_host_syncs(distill_step: Callable[[], object],
                     student_step: Callable[[], object]) -> int:
    """How many more host-synchronising operations ``distill_step`` runs
    than ``student_step`` (the student's own loss on the same batch)."""
    torch.manual_seed(0)
    student = sum(count_host_syncs(student_step).values())
    torch.manual_seed(0)
    distill = sum(count_host_syncs(distill_step).values())
    return distill - student
