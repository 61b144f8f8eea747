"""Argument validators shared by the package: one clear message naming the argument."""
from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_seed", "check_float", "check_probability", "MAX_SEED", "MAX_INT64"]


def check_int(value, name: str, minimum: int | None = None) -> int:
    """``value`` as an ``int`` (numpy integers accepted; ``bool`` rejected), at least ``minimum``.

    Raises
    ------
    TypeError
        Not an integer (e.g. ``2.5``, ``"3"``, ``True``).
    ValueError
        Below ``minimum``.
    """
    what = "an int" if minimum is None else ("a positive int" if minimum == 1 else f"an int >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


#: Largest signed 64-bit integer: the largest seed (torch.manual_seed takes 64-bit seeds, numpy's
#: generators any int >= 0) and the largest DQ bit mask (DQ arrays are compared as int64).
MAX_INT64 = 2**63 - 1
MAX_SEED = MAX_INT64


def check_seed(value, name: str = "seed") -> int:
    """A random seed: an int in [0, `MAX_SEED`] (numpy integers accepted, ``bool`` rejected)."""
    value = check_int(value, name, minimum=0)
    if value > MAX_SEED:
        raise ValueError(f"{name} must be an int in [0, 2**63 - 1], got {value!r}")
    return value


def check_float(value, name: str, *, positive: bool = False, minimum: float | None = None,
                maximum: float | None = None) -> float:
    """``value`` as a finite ``float`` (ints and numpy floats accepted; ``bool`` rejected).

    ``positive`` requires ``value > 0``; ``minimum`` / ``maximum`` are inclusive bounds.

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        Not finite, or outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def check_probability(value, name: str) -> float:
    """``value`` as a ``float`` in [0, 1] (ints and numpy floats accepted; ``bool`` rejected).

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        Not finite, or outside [0, 1].
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a probability in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:  # NaN fails too
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)
