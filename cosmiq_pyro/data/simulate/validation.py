"""Checks of the simulator's arguments: each returns the normalised value or raises
TypeError / ValueError naming the argument and what was expected."""
from __future__ import annotations

import numbers

from ...utils.checks import check_float, check_int, check_seed
from .scenes import FIELDS

__all__ = ["check_size"]


def check_size(size):
    """Validate a frame width: an int >= 16 (the simulator's smallest frame).

    Parameters
    ----------
    size : int
        Frame width and height in pixels.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``size`` is not an int (bools are refused).
    ValueError
        If ``size < 16``.
    """
    return _check_int(size, "size", 16, "an int >= 16")


def _check_int(value, name, minimum, expected=None):
    """``int(value)`` for an int (not a bool) >= ``minimum`` (`cosmiq_pyro.utils.checks.check_int`:
    TypeError if not an int, ValueError if too small, both naming ``name``)."""
    return check_int(value, name, minimum)


def _check_exptime(exptime_s):
    return check_float(exptime_s, "exptime_s (seconds)", positive=True)


def _check_seed(seed, name="seed"):
    return check_seed(seed, name)


def _check_field(field, allow_mixed=True):
    if isinstance(field, str):
        if allow_mixed and field.lower() == "mixed":
            return "mixed"
        if field.upper() in FIELDS:
            return field.upper()
    allowed = FIELDS + (("mixed",) if allow_mixed else ())
    raise ValueError(f"field must be one of {allowed}, got {field!r}")


def _check_multiplier(value):
    return check_float(value, "cr_rate_multiplier", positive=True)


def _check_choices(values, check, name):
    if isinstance(values, str):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of names, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must name at least one choice, got an empty sequence")
    try:
        return tuple(check(v) for v in values)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def _check_exptime_range(exptime_s):
    if isinstance(exptime_s, numbers.Real):
        t = _check_exptime(exptime_s)
        return t, t
    try:
        lo, hi = exptime_s
    except (TypeError, ValueError):
        raise ValueError(f"exptime_s must be a number or a (min, max) pair of seconds, "
                         f"got {exptime_s!r}") from None
    lo, hi = _check_exptime(lo), _check_exptime(hi)
    if hi < lo:
        raise ValueError(f"exptime_s range must have min <= max, got {exptime_s!r}")
    return lo, hi


def _check_defects(defects, allowed):
    """``defects`` as a tuple of names from ``allowed`` (order of ``allowed``, no repeats)."""
    if isinstance(defects, str):
        defects = (defects,) if defects else ()
    try:
        names = tuple(defects)
    except TypeError:
        raise TypeError(f"defects must be a sequence of names among {allowed}, "
                        f"got {defects!r}") from None
    unknown = [d for d in names if d not in allowed]
    if unknown:
        raise ValueError(f"defects must be names among {allowed}, got unknown {unknown!r}")
    return tuple(d for d in allowed if d in names)
