"""What every dataset's items share: per-worker random streams, the dihedral augmentation, the
``(image, mask, ignore)`` tensors, index and argument checks, ``.npy`` headers.

Every item is ``(image, mask, ignore)``: float32 tensors of shape (1, W, W), image in
electrons, mask and ignore 0./1. (the Dataset contract in DEVELOPING.md).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import get_worker_info

from ..utils.checks import check_seed

__all__ = ["WorkerRng", "dihedral", "to_item", "check_index", "check_range", "sky_levels", "npy_shape",
           "is_path_list"]


class WorkerRng:
    """Random draws for items: one numpy Generator per process.

    In the main process the stream starts at ``[seed, *stream]``.  Inside a DataLoader worker,
    the dataset copy would repeat that stream in every worker, so each worker reseeds from
    ``[seed, *stream, worker seed]``; torch derives the worker seed from its own seeded RNG, so
    runs stay reproducible under ``torch.manual_seed`` or a DataLoader ``generator``.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    stream : tuple of int
        Further words of the seed, to keep this stream apart from others drawn from ``seed``.
    """

    def __init__(self, seed, stream=()):
        self.seed = check_seed(seed)
        self.stream = tuple(int(s) for s in stream)
        self._rng = np.random.default_rng([self.seed, *self.stream])  # == default_rng(seed) for ()
        self._worker_seed = None

    def rng(self):
        info = get_worker_info()
        if info is None:
            return self._rng
        if self._worker_seed != info.seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng([self.seed, *self.stream, info.seed % 2**63])
        return self._rng


def dihedral(arrays, rng):
    """Apply one random element of the 8 flips/rotations to every (W, W) array alike."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        out.append(a[:, ::-1] if flip else a)
    return out


def to_item(image, mask, ignore):
    """(W, W) arrays -> ((1, W, W) float32 tensors); mask and ignore as 0./1.

    Always copies: a tensor never shares memory with the caller's arrays or a read-only
    memory-mapped file.
    """
    def tensor(a):
        return torch.from_numpy(np.array(a, dtype=np.float32, order="C"))[None]  # (1, W, W)
    return tensor(image), tensor(np.asarray(mask) != 0), tensor(np.asarray(ignore) != 0)


def check_index(i, n):
    """A dataset index ``i`` (int, or a one-element tensor/array) in ``[-n, n)`` as an int in ``[0, n)``."""
    if isinstance(i, (torch.Tensor, np.ndarray)):
        i = i.item()
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
        raise TypeError(f"dataset index must be an int, got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for a dataset of {n} items")
    return int(i) % n


def check_range(value, name):
    """``value`` as a pair of finite floats ``(low, high)`` with ``low <= high``."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (low, high), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    return lo, hi


def sky_levels(sky, n, aug_sky):
    """The sky level (electrons) of each of ``n`` items, shape (n,): a number for all, one per item,
    or None (zeros; refused when ``aug_sky`` is not (0, 0), which scales the sky)."""
    if sky is None:
        if aug_sky != (0.0, 0.0):
            raise ValueError(f"aug_sky={aug_sky} needs sky (the sky level of each item, electrons)")
        return np.zeros(n)
    sky = np.asarray(sky, dtype=np.float64)
    if sky.ndim == 0:
        sky = np.full(n, float(sky))
    if sky.shape != (n,):
        raise ValueError(f"sky must be a number or have shape ({n},), got shape {sky.shape}")
    if not np.isfinite(sky).all():
        raise ValueError("sky has non-finite values")
    return sky


def npy_shape(path):
    """Shape of the array in a .npy file, without loading its data."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"npy file {path!r} does not exist")
    try:
        planes = np.load(path, mmap_mode="r")  # maps the file: reads the header only
    except (ValueError, OSError) as err:
        raise ValueError(f"{path!r} is not a .npy file of numbers ({err})") from err
    if not isinstance(planes, np.ndarray) or planes.dtype.kind not in "biuf":
        raise ValueError(f"{path!r} does not hold a numeric array")
    return planes.shape


def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def is_path_list(x):
    """Whether ``x`` is a non-empty list, tuple or array of paths (str or os.PathLike)."""
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "US" or (x.dtype == object and x.size > 0 and _is_path(x.flat[0]))
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_path(p) for p in x)
