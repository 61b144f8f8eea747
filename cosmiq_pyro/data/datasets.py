"""Datasets of (image, CR mask, ignore) triples, for the fit functions and torch DataLoaders.

* `PairDataset` reads deepCR's two 'pair' layouts -- arrays of shape (N, W, W), or a list of
  ``.npy`` files each of shape (2 or 3, W, W) = [image, CR mask, optional ignore] -- with
  deepCR 0.3.1's train/val split size and sky-background augmentation.
* `SimulatedDataset` draws HST-like frames from `cosmiq_pyro.data.simulate` on the fly; item ``i``
  is always the same frame, and nothing is stored.
* `as_dataset` turns what a user hands to ``fit_*`` into a Dataset.

Every item is ``(image, mask, ignore)``: float32 tensors of shape (1, W, W), image in
electrons, mask and ignore 0./1. (the Dataset contract in DEVELOPING.md).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

__all__ = ["PairDataset", "SimulatedDataset", "as_dataset", "split_indices"]

PARTS = ("train", "val", "all")


# --------------------------------------------------------------------------- shared pieces


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
    _check_split(part, f_val)
    if part == "all":
        return np.arange(n, dtype=np.int64)
    if n < 2:
        raise ValueError(f"part={part!r} needs at least 2 items to split into disjoint train "
                         f"and val, got {n}; use part='all'")
    n_train = max(1, int(n * (1.0 - f_val)))  # deepCR's size; < n since f_val > 0
    order = np.random.default_rng(seed).permutation(n)
    chosen = order[:n_train] if part == "train" else order[n_train:]
    return np.sort(chosen).astype(np.int64)


def _check_split(part, f_val):
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if isinstance(f_val, bool) or not isinstance(f_val, (int, float, np.floating)) \
            or not 0.0 < f_val < 1.0:
        raise ValueError(f"f_val must be a fraction in (0, 1), got {f_val!r}")


class _Augmenter:
    """Random draws for items: one numpy Generator per process.

    In the main process the stream starts at ``seed``.  Inside a DataLoader worker, the
    dataset copy would repeat that stream in every worker, so each worker reseeds from
    ``(seed, worker seed)``; torch derives the worker seed from its own seeded RNG, so
    runs stay reproducible under ``torch.manual_seed`` or a DataLoader ``generator``.
    """

    def __init__(self, seed):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be a non-negative int, got {type(seed).__name__} {seed!r}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._worker_seed = None

    def rng(self):
        info = get_worker_info()
        if info is None:
            return self._rng
        if self._worker_seed != info.seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng([self.seed, info.seed % 2**63])
        return self._rng


def _dihedral(arrays, rng):
    """Apply one random element of the 8 flips/rotations to every (W, W) array alike."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        out.append(a[:, ::-1] if flip else a)
    return out


def _to_item(image, mask, ignore):
    """(W, W) arrays -> ((1, W, W) float32 tensors); mask and ignore as 0./1.

    Always copies: a tensor never shares memory with the caller's arrays or a read-only
    memory-mapped file.
    """
    def tensor(a):
        return torch.from_numpy(np.array(a, dtype=np.float32, order="C"))[None]  # (1, W, W)
    return tensor(image), tensor(np.asarray(mask) != 0), tensor(np.asarray(ignore) != 0)


def _check_finite_planes(path):
    """Refuse a pair file whose image or mask plane holds NaN/inf, naming the pixel (checked once,
    up front: a non-finite pixel would make the training loss NaN, or the validation loss of
    every epoch, far from where it came from)."""
    planes = np.load(path, mmap_mode="r")  # (2 or 3, W, W)
    for k, name in ((0, "image"), (1, "mask")):
        finite = np.isfinite(planes[k])
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise ValueError(f"{path!r} has {int((~finite).sum())} non-finite {name} pixel(s) (first at row "
                             f"{row}, column {col}); mark them in the ignore plane and replace their values")


def _check_aug_sky(aug_sky):
    try:
        lo, hi = (float(v) for v in aug_sky)
    except (TypeError, ValueError):
        raise ValueError(
            f"aug_sky must be a pair of numbers (low, high), got {aug_sky!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"aug_sky must be finite with low <= high, got {aug_sky!r}")
    return lo, hi


def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def _is_path_list(x):
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "US" or (x.dtype == object and x.size > 0 and _is_path(x.flat[0]))
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_path(p) for p in x)


# --------------------------------------------------------------------------- PairDataset


class PairDataset(Dataset):
    """deepCR-style 'pair' training data: (image, CR mask, ignore) frames.

    Parameters
    ----------
    image : numpy.ndarray or list of path
        Either an (N, W, W) array of images in electrons, or a list of ``.npy`` files each
        holding an array of shape (2, W, W) or (3, W, W) = [image, CR mask, ignore].  Files
        are opened lazily (memory-mapped) per item.
    mask : numpy.ndarray, optional
        (N, W, W) CR masks, required with an image array; must be None with files (the mask
        is the file's second plane).  Nonzero means CR.
    ignore : numpy.ndarray, optional
        (N, W, W) pixels to leave out of loss and metrics; default none (deepCR fills
        zeros).  Must be None with files (the optional third plane).
    sky : float or numpy.ndarray, optional
        Sky level (electrons) per item, shape (N,), used only by ``aug_sky``.  With files
        and ``sky=None``, deepCR's layout is read: ``sky.npy`` in each file's directory,
        indexed by the file name's leading number ``k`` (``k_*.npy`` -> ``sky[k - 1]``).
    part : {"all", "train", "val"}
        Which part of the seeded split (see `split_indices`).  Default all items.
    aug_sky : (float, float)
        Sky augmentation as in deepCR: each time an item is read, its image becomes
        ``image + sky * u`` with ``u ~ U(aug_sky[0], aug_sky[1])``; a negative ``u``
        subtracts sky (deepCR's tutorial uses (-0.9, 3)).  Mask and ignore are unchanged.
        deepCR applies it to its validation part too; pass it only for the part you want
        augmented.  (0, 0), the default, leaves images as they are.
    f_val : float
        Validation fraction, in (0, 1); deepCR's 0.1 by default.
    seed : int
        Seed of the split and of the augmentation draws.  The draws form one stream per
        dataset object (reading items again continues it; a new object with the same seed
        repeats it).  In DataLoader workers each worker reseeds from ``(seed, worker
        seed)``, which torch derives from its own seeded generator.
    augment : bool
        Also apply a random flip / 90-degree rotation, identically to image, mask, ignore.
    meta : pandas.DataFrame, optional
        One row per input item (e.g. ``make_dataset(...).meta``); ``self.meta`` holds the
        rows of this part (index reset).

    Attributes
    ----------
    indices : numpy.ndarray
        Positions in the input of this part's items.
    meta : pandas.DataFrame or None
    """

    def __init__(self, image, mask=None, ignore=None, sky=None, part="all", aug_sky=(0, 0),
                 f_val=0.1, seed=0, augment=False, meta=None):
        _check_split(part, f_val)  # before touching any file
        self.aug_sky = _check_aug_sky(aug_sky)
        self._augmenter = _Augmenter(seed)
        self.augment = bool(augment)
        if _is_path_list(image):
            n = self._init_files(image, mask, ignore, sky)
        else:
            n = self._init_arrays(image, mask, ignore, sky)
        self.indices = split_indices(n, part, f_val, seed)
        self.part = part
        self.meta = _subset_meta(meta, n, self.indices)

    # -- construction

    def _init_arrays(self, image, mask, ignore, sky):
        self.paths = None
        if mask is None:
            raise ValueError("mask is required when image is an array (N, W, W)")
        self._image = _frames(image, "image")
        n, w = self._image.shape[0], self._image.shape[1]
        self._mask = _frames(mask, "mask", self._image.shape)
        self._ignore = None if ignore is None else _frames(ignore, "ignore", self._image.shape)
        if not np.isfinite(self._image).all():
            bad = ~np.isfinite(self._image)
            item, row, col = np.argwhere(bad)[0]
            raise ValueError(f"image has {int(bad.sum())} non-finite pixels (first: item {item}, row {row}, "
                             f"column {col}); put them in ignore and replace their values "
                             "(fitsio.read_hst does this)")
        self.sky = self._sky_array(sky, n)
        self.width = w
        return n

    def _init_files(self, paths, mask, ignore, sky):
        if mask is not None or ignore is not None:
            raise ValueError("with a list of .npy files, mask and ignore come from each file's "
                             "planes [image, mask, ignore]; pass mask=None and ignore=None")
        self.paths = [os.fspath(p) for p in paths]
        width = None
        for p in self.paths:
            shape = _npy_shape(p)
            if len(shape) != 3 or shape[0] not in (2, 3) or shape[1] != shape[2] or shape[1] == 0:
                raise ValueError(f"{p!r} holds an array of shape {shape}; expected (2, W, W) or "
                                 "(3, W, W) = [image, CR mask, optional ignore]")
            _check_finite_planes(p)
            if width is None:
                width = shape[1]
            elif shape[1] != width:
                raise ValueError(f"{p!r} has frames of {shape[1]}x{shape[2]} but "
                                 f"{self.paths[0]!r} has {width}x{width}; all must match")
        n = len(self.paths)
        if sky is None and self.aug_sky != (0.0, 0.0):
            sky = _deepcr_sky(self.paths)
        self.sky = self._sky_array(sky, n)
        self.width = width
        return n

    def _sky_array(self, sky, n):
        if sky is None:
            if self.aug_sky != (0.0, 0.0):
                raise ValueError(f"aug_sky={self.aug_sky} needs sky (the sky level of each item)")
            return np.zeros(n)
        sky = np.asarray(sky, dtype=np.float64)
        if sky.ndim == 0:
            sky = np.full(n, float(sky))
        if sky.shape != (n,):
            raise ValueError(f"sky must be a number or have shape ({n},), got shape {sky.shape}")
        if not np.isfinite(sky).all():
            raise ValueError("sky has non-finite values")
        return sky

    # -- items

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        j = int(self.indices[_index(i, len(self))])
        if self.paths is None:
            image = self._image[j]
            mask = self._mask[j]
            ignore = np.zeros_like(mask) if self._ignore is None else self._ignore[j]
        else:
            planes = np.load(self.paths[j], mmap_mode="r")  # (2 or 3, W, W)
            image, mask = planes[0], planes[1]
            ignore = planes[2] if planes.shape[0] == 3 else np.zeros(mask.shape, np.float32)
        image = np.asarray(image, dtype=np.float32)
        rng = self._augmenter.rng()
        lo, hi = self.aug_sky
        if (lo, hi) != (0.0, 0.0):
            image = image + np.float32(self.sky[j] * rng.uniform(lo, hi))
        if self.augment:
            image, mask, ignore = _dihedral((image, mask, ignore), rng)
        return _to_item(image, mask, ignore)

    def __repr__(self):
        source = f"{len(self.paths)} files" if self.paths is not None else "arrays"
        return (f"PairDataset({len(self)} items of {self.width}x{self.width} from {source}, "
                f"part={self.part!r}, aug_sky={self.aug_sky}, augment={self.augment})")


def _index(i, n):
    if isinstance(i, (torch.Tensor, np.ndarray)):
        i = i.item()
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
        raise TypeError(f"dataset index must be an int, got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for a dataset of {n} items")
    return int(i) % n


def _frames(a, name, shape=None):
    """Validate an (N, W, W) numeric array (memmaps are kept, not copied)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape} but image has shape {shape}")
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (N, W, W), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty (N = 0)")
    if a.shape[1] != a.shape[2] or a.shape[1] == 0:
        raise ValueError(f"{name} frames must be square and non-empty (N, W, W), got {a.shape}")
    return a


def _npy_shape(path):
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


def _deepcr_sky(paths):
    """deepCR's layout: ``<dir>/sky.npy`` with ``sky[k - 1]`` for file ``<dir>/k_*.npy``."""
    cache, sky = {}, np.empty(len(paths))
    for n, p in enumerate(paths):
        directory, name = os.path.split(p)
        sky_path = os.path.join(directory, "sky.npy")
        if sky_path not in cache:
            if not os.path.isfile(sky_path):
                raise ValueError(f"aug_sky needs sky levels: pass sky=, or put sky.npy beside "
                                 f"{p!r} (deepCR layout)")
            cache[sky_path] = np.load(sky_path)
        try:
            k = int(name.split("_")[0])
            sky[n] = cache[sky_path][k - 1]
        except (ValueError, IndexError):
            raise ValueError(f"{p!r}: deepCR's sky.npy layout needs file names 'k_*.npy' with "
                             f"1 <= k <= {len(cache[sky_path])}") from None
    return sky


def _subset_meta(meta, n, indices):
    if meta is None:
        return None
    if not isinstance(meta, pd.DataFrame):
        raise TypeError(f"meta must be a pandas DataFrame or None, got {type(meta).__name__}")
    if len(meta) != n:
        raise ValueError(f"meta has {len(meta)} rows but there are {n} items")
    return meta.iloc[indices].reset_index(drop=True)


# --------------------------------------------------------------------------- simulated


class SimulatedDataset(Dataset):
    """HST-like frames simulated on the fly by `cosmiq_pyro.data.simulate`.

    Item ``i`` is ``simulate.simulate_frame(size=size, **simulate.frame_spec(i, ...))``: its
    field, filter, exposure time and seed depend only on ``(i, seed)``, so every epoch (and
    every process) sees the same frames and nothing is stored.

    Parameters
    ----------
    n : int
        Number of frames.
    size : int
        Frame width W (frames are W x W).
    fields, filters : sequence of str
        Field types and ACS filters drawn from (see `cosmiq_pyro.data.simulate`).
    exptime_s : float or (float, float)
        Exposure time, or the range it is drawn from, in seconds.
    seed : int
        Seed of the frame specifications and of the ``augment`` draws.
    augment : bool
        Apply a random flip / 90-degree rotation to image, mask and ignore alike.
    label_rule : {"drizcr", "sigma"}
        CR labelling rule passed to `simulate.simulate_frame` (default AstroDrizzle's driz_cr).
    mask_threshold_sigma : float
        k of the ``"sigma"`` rule, passed to `simulate.simulate_frame`.
    defects : sequence of str
        Which of ``simulate.DEFECTS`` (warm/hot pixels, bad columns, CTE trails) the frames
        have (default all), passed to `simulate.simulate_frame`.

    Attributes
    ----------
    meta : pandas.DataFrame
        One row per frame (field, filter, exptime_s, seed), known without simulating.
    """

    def __init__(self, n, size=256, fields=("EX", "GC", "GAL"),
                 filters=("F435W", "F606W", "F814W"), exptime_s=(100, 1200), seed=0,
                 augment=False, *, label_rule="drizcr", mask_threshold_sigma=1.0,
                 defects=("hot_pixels", "bad_columns", "cte_trails")):
        # imported here: galsim takes ~1 s to import and PairDataset users do not need it
        from . import simulate

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be a positive int, got {type(n).__name__} {n!r}")
        if n < 1:
            raise ValueError(f"n must be a positive int, got {n}")
        self._augmenter = _Augmenter(seed)
        self.size = simulate.check_size(size)  # the simulator's own limits, checked now
        self._simulate = simulate
        self.n, self.seed = int(n), int(seed)
        self.fields, self.filters, self.exptime_s = tuple(fields), tuple(filters), exptime_s
        self.augment = bool(augment)
        self.label_rule = simulate.check_label_rule(label_rule)
        self.mask_threshold_sigma = mask_threshold_sigma
        self.defects = simulate.check_defects(defects)
        # frame_spec validates fields, filters and exptime_s
        self._specs = [simulate.frame_spec(i, self.seed, self.fields, self.filters, exptime_s)
                       for i in range(self.n)]
        self.meta = pd.DataFrame(self._specs)

    def __len__(self):
        return self.n

    def frame(self, i):
        """The full `SimulatedFrame` of item ``i`` (noiseless image, CR image, meta...)."""
        return self._simulate.simulate_frame(size=self.size, label_rule=self.label_rule,
                                             mask_threshold_sigma=self.mask_threshold_sigma,
                                             defects=self.defects,
                                             **self._specs[_index(i, self.n)])

    def __getitem__(self, i):
        f = self.frame(i)
        image, mask, ignore = f.image, f.mask, f.ignore
        if self.augment:
            image, mask, ignore = _dihedral((image, mask, ignore), self._augmenter.rng())
        return _to_item(image, mask, ignore)

    def __repr__(self):
        return (f"SimulatedDataset({self.n} frames of {self.size}x{self.size}, "
                f"fields={self.fields}, filters={self.filters}, exptime_s={self.exptime_s}, "
                f"seed={self.seed}, augment={self.augment}, label_rule={self.label_rule!r})")


# --------------------------------------------------------------------------- as_dataset


def as_dataset(data, name="data"):
    """Turn what a user passes to ``fit_*`` / ``evaluate`` into a Dataset.

    Parameters
    ----------
    data : Dataset, tuple, simulated set or list of paths
        * a `torch.utils.data.Dataset` -- returned as it is;
        * ``(image, mask)`` or ``(image, mask, ignore)`` arrays of shape (N, W, W), ignore
          may be None;
        * an object with ``image``, ``mask`` (and optionally ``ignore``, ``meta``)
          attributes, such as ``simulate.make_dataset(...)``;
        * a list of ``.npy`` paths in deepCR's pair layout.
    name : str
        How error messages refer to ``data`` (e.g. ``"train"``).

    Returns
    -------
    torch.utils.data.Dataset
        ``data`` itself, or a `PairDataset` with ``part="all"`` and no augmentation.
    """
    if isinstance(data, Dataset):
        return data
    try:
        if _is_path_list(data):
            return PairDataset(list(data))
        if hasattr(data, "image") and hasattr(data, "mask"):
            return PairDataset(data.image, data.mask, getattr(data, "ignore", None),
                               meta=getattr(data, "meta", None))
        if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
            if len(data) not in (2, 3):
                raise ValueError(f"expected (image, mask) or (image, mask, ignore), got a "
                                 f"{type(data).__name__} of {len(data)} items")
            image, mask, *rest = data
            if mask is None:
                raise ValueError("mask is None; a training set needs CR masks")
            return PairDataset(image, mask, rest[0] if rest else None)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name}: {err}") from err
    raise TypeError(f"{name}: expected a torch Dataset, a tuple (image, mask[, ignore]) of "
                    f"(N, W, W) arrays, a simulated set or a list of .npy paths; "
                    f"got {type(data).__name__}")
