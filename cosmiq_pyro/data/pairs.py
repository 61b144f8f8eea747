"""deepCR's 'pair' training data as a torch Dataset: `PairDataset`.

Arrays of shape (N, W, W), or a list of ``.npy`` files each of shape (2 or 3, W, W) = [image,
CR mask, optional ignore], with deepCR 0.3.1's train/val split size and sky-background
augmentation.  Items follow the Dataset contract (`cosmiq_pyro.data.items`).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from .items import WorkerRng, check_index, check_range, dihedral, is_path_list, npy_shape, sky_levels, to_item
from .split import check_split, split_indices, subset_meta

__all__ = ["PairDataset"]


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
        check_split(part, f_val)  # before touching any file
        self.aug_sky = check_range(aug_sky, "aug_sky")
        self._augmenter = WorkerRng(seed)
        self.augment = bool(augment)
        if is_path_list(image):
            n = self._init_files(image, mask, ignore, sky)
        else:
            n = self._init_arrays(image, mask, ignore, sky)
        self.indices = split_indices(n, part, f_val, seed)
        self.part = part
        self.meta = subset_meta(meta, n, self.indices)

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
        self.sky = sky_levels(sky, n, self.aug_sky)
        self.width = w
        return n

    def _init_files(self, paths, mask, ignore, sky):
        if mask is not None or ignore is not None:
            raise ValueError("with a list of .npy files, mask and ignore come from each file's "
                             "planes [image, mask, ignore]; pass mask=None and ignore=None")
        self.paths = [os.fspath(p) for p in paths]
        width = None
        for p in self.paths:
            shape = npy_shape(p)
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
        self.sky = sky_levels(sky, n, self.aug_sky)
        self.width = width
        return n

    # -- items

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        j = int(self.indices[check_index(i, len(self))])
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
            image, mask, ignore = dihedral((image, mask, ignore), rng)
        return to_item(image, mask, ignore)

    def __repr__(self):
        source = f"{len(self.paths)} files" if self.paths is not None else "arrays"
        return (f"PairDataset({len(self)} items of {self.width}x{self.width} from {source}, "
                f"part={self.part!r}, aug_sky={self.aug_sky}, augment={self.augment})")


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
