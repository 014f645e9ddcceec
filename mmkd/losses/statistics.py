"""Per-channel statistics that the feature terms normalise with.

``torch.std`` runs a one-pass (Welford) kernel that is several times
slower on CPUs than two passes (mean, then mean squared deviation); the
two-pass form gives the same values up to rounding. The variance gets a
floor before its square root, so that a constant channel (variance 0)
has finite gradients instead of NaN (the square root's derivative at 0).
"""
from typing import Sequence, Tuple

from torch import Tensor

#: the variance floor under the square root
VARIANCE_FLOOR = 1e-12


def mean_std(x: Tensor, dims: Sequence[int], unbiased: bool = True
             ) -> Tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``x`` over ``dims`` (kept as size 1).

    Args:
        x: a tensor.
        dims: the dimensions reduced.
        unbiased: divide the squared deviations by ``n - 1`` (as
            ``torch.std`` by default) instead of ``n``.

    Returns:
        tuple: ``(mean, std)``, ``std`` at least ``sqrt(VARIANCE_FLOOR)``.
    """
    mean = x.mean(tuple(dims), keepdim=True)
    return mean, _std(x - mean, dims, unbiased)


def standardize(x: Tensor, dims: Sequence[int], unbiased: bool = True,
                eps: float = 1e-6) -> Tensor:
    """``(x − mean) / (std + eps)`` over ``dims`` (see :func:`mean_std`)."""
    centred = x - x.mean(tuple(dims), keepdim=True)
    return centred / (_std(centred, dims, unbiased) + eps)


def _std(centred: Tensor, dims: Sequence[int], unbiased: bool) -> Tensor:
    count = 1
    for dim in dims:
        count *= centred.shape[dim]
    denominator = max(count - 1, 1) if unbiased else count
    variance = centred.pow(2).sum(tuple(dims), keepdim=True) / denominator
    return variance.clamp(min=VARIANCE_FLOOR).sqrt()
