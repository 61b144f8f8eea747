"""Input checks shared by the metrics: each returns the normalised array or value, or raises
TypeError / ValueError naming the input and what was expected."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...utils.checks import check_int


def _as_numeric(x, name: str) -> np.ndarray:
    if x is None:
        raise TypeError(f"{name} is required, got None")
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric or bool array, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} is empty; expected at least one pixel")
    return a


def _as_float(x, name: str) -> tuple:
    """``(a, min(a), max(a))``: the numeric array as float (float32 and wider kept,
    ints/bools/float16 -> float32) and its range (NaN if any value is NaN)."""
    a = _as_numeric(x, name)
    if a.dtype.kind != "f" or a.dtype.itemsize < 4:
        a = a.astype(np.float32)
    return a, a.min(), a.max()


def _check_prob(p, name: str = "p") -> np.ndarray:
    """Float array (float32 kept, ints/bools -> float32) with every value finite in [0, 1]."""
    a, lo, hi = _as_float(p, name)
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"{name} contains NaN; expected finite probabilities in [0, 1]")
    if not (lo >= 0 and hi <= 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1]; found values in [{lo}, {hi}]")
    return a


def _check_binary(y, name: str) -> np.ndarray:
    """Bool array from a bool or 0/1 array."""
    a = _as_numeric(y, name)
    if a.dtype.kind == "b":
        return a
    if not np.all((a == 0) | (a == 1)):
        raise ValueError(f"{name} must be bool or hold only 0 and 1")
    return a != 0


def _check_finite(u, name: str) -> np.ndarray:
    """Float array (float32 kept, ints/bools -> float32) with every value finite."""
    a, lo, hi = _as_float(u, name)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} must be finite everywhere (found NaN or inf)")
    return a


def _check_shapes(**arrays: Optional[np.ndarray]) -> None:
    named = [(k, v) for k, v in arrays.items() if v is not None]
    ref_name, ref = named[0]
    for k, v in named[1:]:
        if v.shape != ref.shape:
            raise ValueError(f"{k} has shape {v.shape} but {ref_name} has shape {ref.shape}; "
                             "all inputs must have the same shape")


def _check_n_bins(n_bins) -> int:
    return check_int(n_bins, "n_bins", minimum=1)


def _check_strategy(strategy) -> str:
    if strategy not in ("uniform", "quantile"):
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    return strategy


def _check_threshold(threshold, name: str = "threshold") -> float:
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"{name} must be finite, got {threshold!r}")
    return t


def _check_dilate(dilate, shape) -> int:
    dilate = check_int(dilate, "dilate (disk radius in pixels)", minimum=0)
    if dilate > 0 and len(shape) not in (2, 3):
        raise ValueError(f"dilate > 0 needs p of shape (H, W) or (N, H, W) frames; got shape {shape}")
    return int(dilate)


def _valid(ignore: Optional[np.ndarray], *arrays: np.ndarray) -> tuple:
    """Flatten ``arrays`` and drop ignored pixels; each result is 1-D."""
    if ignore is None:
        return tuple(a.ravel() for a in arrays)
    keep = ~ignore.ravel()
    if not keep.any():
        raise ValueError("ignore excludes every pixel; nothing left to evaluate")
    return tuple(a.ravel()[keep] for a in arrays)


def _prepare(p, y, u=None, ignore=None, *, u_name: str = "u"):
    """Validate and return flat valid ``(p, y)`` or ``(p, y, u)``."""
    p = _check_prob(p, "p")
    y = _check_binary(y, "y")
    uu = None if u is None else _check_finite(u, u_name)
    ig = None if ignore is None else _check_binary(ignore, "ignore")
    _check_shapes(p=p, y=y, **{u_name: uu}, ignore=ig)
    if uu is None:
        return _valid(ig, p, y)
    return _valid(ig, p, y, uu)


def _require_both(n_pos: int, n_neg: int, what: str, pos: str = "positive (CR)",
                  neg: str = "negative") -> None:
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"{what} needs both {pos} and {neg} pixels (after ignore); "
                         f"got {n_pos} and {n_neg}")
