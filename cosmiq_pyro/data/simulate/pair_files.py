"""Writing a `SimulatedSet` in deepCR's 'pair' file layout, atomically file by file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...io.atomic import atomic_open
from .datasets import SimulatedSet

__all__ = ["write_pairs"]


def _atomic_save(path, array):
    """``numpy.save`` to a temporary file in the same directory, then rename."""
    with atomic_open(path) as fh:
        np.save(fh, array)


def write_pairs(directory, dataset):
    """Write ``dataset`` in deepCR's 'pair' file layout.

    One ``NNNNNN_<field>_<filter>.npy`` per frame holding a float32 array (3, W, W) =
    [image, mask, ignore], and ``sky.npy`` (n,) float32.  deepCR 0.3.1's
    ``PairedDatasetImagePath`` reads the number before the first underscore as a 1-based
    index into ``sky.npy`` of the same directory, so frames are numbered from 000001.
    Every file is written to a temporary name and renamed.

    Parameters
    ----------
    directory : str or os.PathLike
        Created if missing.
    dataset : SimulatedSet
        From `make_dataset`.

    Returns
    -------
    list of str
        The frame paths in order: ``deepCR.train(paths, mode='pair')`` takes them.
    """
    if not isinstance(dataset, SimulatedSet):
        raise TypeError(f"dataset must be a SimulatedSet (from make_dataset), "
                        f"got {type(dataset).__name__}")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory {str(directory)!r} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    meta = dataset.meta
    paths = []
    for i in range(len(dataset)):
        name = f"{i + 1:06d}_{meta['field'].iloc[i]}_{meta['filter'].iloc[i]}.npy"
        stack = np.stack([dataset.image[i], dataset.mask[i], dataset.ignore[i]]).astype(np.float32)
        _atomic_save(directory / name, stack)
        paths.append(str(directory / name))
    _atomic_save(directory / "sky.npy", np.asarray(dataset.sky, np.float32))
    return paths
