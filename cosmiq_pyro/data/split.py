"""The seeded train/validation split every dataset uses (deepCR 0.3.1's sizes)."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["split_indices", "check_split", "subset_meta", "PARTS"]

PARTS = ("train", "val", "all")


def split_indices(n, part, f_val=0.1, seed=0):
    """Indices of the ``part`` of ``n`` items in a seeded train/val split.

    deepCR 0.3.1 keeps the first ``max(1, int(n * (1 - f_val)))`` items for training and
    the rest for validation, in file order.  Here the same sizes are drawn from a seeded
    permutation, so that a sorted or grouped input (e.g. by field) does not put one group
    in validation.  ``"train"`` and ``"val"`` with the same ``seed`` and ``f_val`` are
    disjoint and together cover ``range(n)``.

    Parameters
    ----------
    n : int
        Number of items (at least 2 for ``"train"`` / ``"val"``).
    part : {"train", "val", "all"}
    f_val : float
        Fraction for validation, in (0, 1).
    seed : int
        Seed of the permutation.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices.
    """
    check_split(part, f_val)
    if part == "all":
        return np.arange(n, dtype=np.int64)
    if n < 2:
        raise ValueError(f"part={part!r} needs at least 2 items to split into disjoint train "
                         f"and val, got {n}; use part='all'")
    n_train = max(1, int(n * (1.0 - f_val)))  # deepCR's size; < n since f_val > 0
    order = np.random.default_rng(seed).permutation(n)
    chosen = order[:n_train] if part == "train" else order[n_train:]
    return np.sort(chosen).astype(np.int64)


def check_split(part, f_val):
    """Refuse a ``part`` not in `PARTS` or an ``f_val`` outside (0, 1)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if isinstance(f_val, bool) or not isinstance(f_val, (int, float, np.floating)) \
            or not 0.0 < f_val < 1.0:
        raise ValueError(f"f_val must be a fraction in (0, 1), got {f_val!r}")


def subset_meta(meta, n, indices):
    """The rows ``indices`` of a per-item ``meta`` DataFrame of ``n`` rows (index reset); None stays None."""
    if meta is None:
        return None
    if not isinstance(meta, pd.DataFrame):
        raise TypeError(f"meta must be a pandas DataFrame or None, got {type(meta).__name__}")
    if len(meta) != n:
        raise ValueError(f"meta has {len(meta)} rows but there are {n} items")
    return meta.iloc[indices].reset_index(drop=True)

