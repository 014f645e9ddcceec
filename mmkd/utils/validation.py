"""Checks of numeric term arguments, run when a term is built.

Each check raises ``ValueError`` (``TypeError`` for a wrong type) whose
message names the argument, the value given and what is accepted; the
distiller prefixes the term's name, so a bad config fails when the model
is built instead of training on with NaN or a negative loss.
"""
import math
from numbers import Integral, Real
from typing import Sequence, Tuple


def _require_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f'{name} must be a number, got {value!r} '
                        f'({type(value).__name__}).')
    return float(value)


def check_loss_weight(value: object, name: str = 'loss_weight') -> float:
    """A finite, non-negative loss weight.

    Args:
        value: the weight from the config.
        name: the argument's name, for the message.

    Returns:
        ``value`` as a float.

    Raises:
        TypeError: not a number (e.g. the string ``'abc'``).
        ValueError: NaN, infinite or negative.
    """
    weight = _require_real(value, name)
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f'{name} must be a finite number >= 0, got '
                         f'{value!r}. A negative weight would reward the '
                         'student for moving away from the teacher.')
    return weight


def check_iterations(value: object, name: str) -> int:
    """A non-negative whole number of iterations.

    Raises:
        TypeError: not an integer.
        ValueError: negative.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f'{name} must be a whole number of iterations, got '
                        f'{value!r} ({type(value).__name__}).')
    if value < 0:
        raise ValueError(f'{name} must be >= 0 iterations, got {value!r}.')
    return int(value)


def check_positive(value: object, name: str) -> float:
    """A finite number > 0 (temperatures, margins of division).

    Raises:
        TypeError: not a number.
        ValueError: NaN, infinite, zero or negative.
    """
    number = _require_real(value, name)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f'{name} must be a finite number > 0, got '
                         f'{value!r}.')
    return number


def check_fraction(value: object, name: str) -> float:
    """A finite number in [0, 1] (mixing coefficients, thresholds).

    Raises:
        TypeError: not a number.
        ValueError: outside [0, 1] or NaN.
    """
    number = _require_real(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f'{name} must be in [0, 1], got {value!r}.')
    return number


def check_image_size(value: Sequence[int], name: str) -> Tuple[int, int]:
    """An (H, W) pair of positive whole numbers.

    Raises:
        ValueError: not two positive integers.
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, '__len__') \
            or len(value) != 2 or not all(
                isinstance(v, Integral) and not isinstance(v, bool) and v > 0
                for v in value):
        raise ValueError(f'{name} must be (H, W), two whole numbers > 0, '
                         f'got {value!r}.')
    return int(value[0]), int(value[1])
