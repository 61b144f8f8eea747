"""deepCR's 'simulate' training data: CR-free images plus the cosmic rays of real dark frames.

deepCR 0.3.1 (``train(mode='simulate')``, its ``dataset.DatasetSim``) builds each training image
from a CR-free image ``I`` (e.g. a drizzled, CR-rejected stack cut to W x W) and ``n_mask`` dark
frames, each stored with its CR mask as ``[D_k, M_k]`` (the dark's CR charge ``D_k`` and the mask of
its CR pixels, from the dark-frame reduction):

.. math::
    x = (I + u\\, s)\\, f + \\sum_k D_k, \\qquad u \\sim U(a_0, a_1), \\qquad
    \\log_{10} f \\sim U(\\log_{10} g_0, \\log_{10} g_1),

    y = \\bigvee_k (M_k \\ne 0),

with ``s`` the image's sky level, ``(a_0, a_1)`` = ``aug_sky`` and ``(g_0, g_1)`` = ``aug_img``.
Optionally (``noise``) Gaussian noise of variance ``max(x, 1)`` is added (shot noise in
electrons), then pixels are clipped at ``saturation``, and (``norm``) the image is standardised
by the median and standard deviation of its pixels below the ``percentile_limit`` percentile.
The CRs keep the morphology of real CR hits on the detector (the method of deepCR's later
training sets), and the mask is exact up to the dark's own CR labelling.

`DarkMixDataset` does this on the fly.  Differences from deepCR, both deliberate: the darks
of one image are drawn *without* replacement (deepCR may add the same dark twice, doubling its
CR charge), and the train/validation split is a seeded permutation of the images and, separately,
of the darks (deepCR takes them in file order), so the two parts never share a dark.
"""
from __future__ import annotations

import os

import numpy as np
from torch.utils.data import Dataset

from ..utils.checks import check_int, check_seed
from .items import WorkerRng, check_index, check_range, npy_shape, sky_levels, to_item
from .split import split_indices

__all__ = ["DarkMixDataset"]


class DarkMixDataset(Dataset):
    """Training frames made of CR-free images and dark-frame cosmic rays (deepCR's 'simulate').

    Parameters
    ----------
    image : list of path, or numpy.ndarray
        CR-free images in electrons: ``.npy`` files each holding a (W, W) image or a (2, W, W)
        array [image, ignore]; or an (N, W, W) array of images.
    dark : list of path, or numpy.ndarray
        Dark frames: ``.npy`` files each holding a (2, W, W) array [CR charge (electrons, sky and
        dark current removed), CR mask]; or an (M, 2, W, W) array.
    sky : float or numpy.ndarray, optional
        Sky level (electrons) of every image, or one per image (N,); needed by ``aug_sky``.
    part : {"all", "train", "val"}
        Which part of the seeded split (`split_indices`, applied to the images and to the darks).
    aug_sky : (float, float)
        ``u`` of the formula: ``u * sky`` is added to the image (deepCR: (0, 0)).
    aug_img : (float, float)
        Range of the image scaling ``f``, drawn log-uniformly (deepCR: (1, 1), no scaling).
    noise : bool
        Add Gaussian noise of variance ``max(x, 1)`` e- squared.
    saturation : float
        Pixels above it are set to it (deepCR: 1e5 e-).
    n_mask : int
        Dark frames whose CRs are added to each image (at most the number of darks in this part).
    norm : bool
        Standardise each image: ``(x - median(c)) / std(c)`` with ``c`` the pixels below the
        ``percentile_limit`` percentile of ``x`` (deepCR's ``norm``; a model trained so needs the
        same scaling of its inputs at prediction time).
    percentile_limit : float
        Percentile in (0, 100] for ``norm`` (deepCR's train default 50).
    f_val : float
        Validation fraction (deepCR: 0.1).
    seed : int
        Seed of the split and of every random draw.
    resample : bool
        True (training): every read of an item draws new darks, sky, scale and noise, from one
        stream per dataset object (per DataLoader worker, reseeded from the worker seed).  False
        (validation): item ``i`` is always the same frame, drawn from ``(seed, i)``; deepCR gets
        the same by reseeding NumPy before each validation pass.

    Notes
    -----
    Items are ``(image, mask, ignore)``, float32 tensors of shape (1, W, W) (the package's
    Dataset contract).
    """

    def __init__(self, image, dark, sky=None, part="all", aug_sky=(0, 0), aug_img=(1, 1), noise=False,
                 saturation=1e5, n_mask=1, norm=False, percentile_limit=50, f_val=0.1, seed=0, resample=True):
        self.seed = check_seed(seed)
        self._images, width = _sources(image, "image", (2, 3))
        self._darks, dark_width = _sources(dark, "dark (mask=)", (3,))
        if dark_width != width:
            raise ValueError(f"dark frames are {dark_width}x{dark_width} but images are {width}x{width}")
        self.width = width
        self.image_indices = split_indices(len(self._images), part, f_val, self.seed)
        self.dark_indices = split_indices(len(self._darks), part, f_val, self.seed + 1)
        self.part = part
        self.aug_sky = check_range(aug_sky, "aug_sky")
        g0, g1 = check_range(aug_img, "aug_img")
        if g0 <= 0:
            raise ValueError(f"aug_img must be positive factors (low, high), got {aug_img!r}")
        self.aug_img = (g0, g1)
        self.sky = sky_levels(sky, len(self._images), self.aug_sky)
        n_mask = check_int(n_mask, "n_mask", minimum=1)
        if n_mask > len(self.dark_indices):
            raise ValueError(f"n_mask={n_mask} darks per image but part={part!r} has "
                             f"{len(self.dark_indices)} dark frame(s); give more darks or a smaller n_mask")
        self.n_mask = int(n_mask)
        if isinstance(saturation, bool) or not isinstance(saturation, (int, float, np.number)) \
                or np.isnan(saturation):
            raise ValueError(f"saturation must be a number (electrons), got {saturation!r}")
        self.saturation = float(saturation)
        if not 0 < percentile_limit <= 100:
            raise ValueError(f"percentile_limit must be in (0, 100], got {percentile_limit!r}")
        self.noise, self.norm, self.percentile_limit = bool(noise), bool(norm), float(percentile_limit)
        self.resample = bool(resample)
        self._draws = WorkerRng(self.seed, stream=(2,))

    def __len__(self):
        return len(self.image_indices)

    def __repr__(self):
        return (f"DarkMixDataset({len(self)} images x {len(self.dark_indices)} darks of {self.width}x{self.width}, "
                f"part={self.part!r}, n_mask={self.n_mask}, aug_sky={self.aug_sky}, aug_img={self.aug_img}, "
                f"noise={self.noise}, saturation={self.saturation:g}, norm={self.norm})")

    def _generator(self, i: int) -> np.random.Generator:
        if not self.resample:
            return np.random.default_rng([self.seed, 1, i])
        return self._draws.rng()  # one stream per dataset object (per DataLoader worker)

    def __getitem__(self, i):
        i = check_index(i, len(self))
        j = int(self.image_indices[i])
        rng = self._generator(i)
        image, ignore = _image_planes(_read(self._images[j]))
        chosen = rng.choice(self.dark_indices, size=self.n_mask, replace=False)
        cr = np.zeros_like(image, dtype=np.float64)
        mask = np.zeros(image.shape, bool)
        for k in chosen:
            planes = _read(self._darks[int(k)])
            cr += planes[0]
            mask |= planes[1] != 0
        u = rng.uniform(*self.aug_sky)
        f = 10.0 ** rng.uniform(np.log10(self.aug_img[0]), np.log10(self.aug_img[1]))
        x = (image + u * self.sky[j]) * f + cr  # (W, W) float64
        if self.noise:
            x = x + rng.normal(0.0, np.sqrt(np.maximum(x, 1.0)))
        x = np.minimum(x, self.saturation)
        if self.norm:
            x = _standardise(x, self.percentile_limit)
        return to_item(x, mask, ignore)


def _standardise(x: np.ndarray, percentile_limit: float) -> np.ndarray:
    """``(x - median(c)) / std(c)``, ``c = x[x < percentile(x, percentile_limit)]`` (deepCR's norm).

    When ``c`` has fewer than two pixels or no spread (a flat image), all of ``x`` is used; a flat
    image is only shifted.
    """
    clip = x[x < np.percentile(x, percentile_limit)]
    if clip.size < 2 or clip.std() == 0:
        clip = x.ravel()
    scale = clip.std()
    return (x - np.median(clip)) / (scale if scale > 0 else 1.0)


def _read(source) -> np.ndarray:
    return np.load(source) if isinstance(source, str) else source


def _image_planes(a: np.ndarray):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        return a[0], a[1]
    return a, np.zeros_like(a)


def _sources(data, name: str, ndims: tuple) -> tuple[list, int]:
    """``data`` as a list of per-item sources (paths or arrays) and the common width W.

    Files are checked by their header only (shape and dtype); an image file is (W, W) or
    (2, W, W), a dark (2, W, W).
    """
    is_dark = ndims == (3,)
    if isinstance(data, (str, os.PathLike)):
        raise TypeError(f"{name} is one path {os.fspath(data)!r}; pass a list of .npy files")
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        expected = 4 if is_dark else 3
        if data.ndim != expected or (is_dark and data.shape[1] != 2):
            raise ValueError(f"{name} array has shape {data.shape}; expected "
                             f"{'(M, 2, W, W)' if is_dark else '(N, W, W)'}")
        items = list(data)
    elif isinstance(data, (list, tuple, np.ndarray)) and len(data) > 0:
        items = [os.fspath(p) if isinstance(p, (str, os.PathLike)) else p for p in data]
    else:
        raise TypeError(f"{name} must be a non-empty list of .npy paths or an array, got {type(data).__name__}")
    width = None
    for item in items:
        shape = npy_shape(item) if isinstance(item, str) else np.shape(item)
        ok = (len(shape) == 3 and shape[0] == 2) if is_dark else \
            (len(shape) == 2 or (len(shape) == 3 and shape[0] == 2))
        if not ok or shape[-1] != shape[-2] or shape[-1] == 0:
            where = repr(item) if isinstance(item, str) else "an item"
            layout = "(2, W, W) = [CR charge, CR mask]" if is_dark else "(W, W) or (2, W, W) = [image, ignore]"
            raise ValueError(f"{name}: {where} has shape {shape}; expected {layout}")
        if width is None:
            width = shape[-1]
        elif shape[-1] != width:
            raise ValueError(f"{name}: frames of {shape[-1]}x{shape[-1]} and {width}x{width}; all must match")
    return items, width
