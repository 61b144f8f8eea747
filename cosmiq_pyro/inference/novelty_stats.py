"""The statistics behind `novelty`, free of any network: the block noise statistic
(`noise_excess`), the block level (`block_level`), class-conditional Gaussian densities with shrunk covariances
(`GaussianDensity`), running block sums of feature maps (`BlockSums`), the log-feature transform
and a rank AUROC (`auroc`).  The maths of each is in its docstring; `novelty` says how they are
combined."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..instruments import get_instrument

__all__ = ["BLOCK_PX", "READ_NOISE_REF_E", "FEATURE_EPS", "ROW_STEP", "GaussianDensity", "auroc",
           "noise_excess", "block_level", "BlockSums", "features_from_block_means"]

#: Side of a novelty block in image pixels (the bottleneck map is at half resolution).
BLOCK_PX = 64
#: Read noise (e-) assumed when predicting the noise of a block from its level: the middle of
#: ACS/WFC's 3.75-5.65 e- (the ACS-WFC spec's range, the simulator's), 4.7 e-.
READ_NOISE_REF_E = get_instrument("ACS-WFC").detector.read_noise_mid_e
#: Offset inside the log of block-averaged activations (activations are ReLU outputs >= 0).
FEATURE_EPS = 1e-3
#: `noise_excess` reads every ROW_STEP-th row.
ROW_STEP = 2
#: MAD -> sigma for a Gaussian.
_MAD_TO_SIGMA = 1.482602218505602


@dataclass
class GaussianDensity:
    """Class-conditional Gaussians fitted to feature vectors, kept as means and whitening matrices.

    For ``K`` classes with means ``mu_k`` and covariances ``Sigma_k = L_k L_k^T`` (Cholesky),

    .. math:: d^2(f) = \\min_k \\| W_k (f - \\mu_k) \\|^2, \\qquad W_k = L_k^{-1},

    the squared Mahalanobis distance to the nearest class (Lee et al. 2018); ``K = 1`` is a
    single Gaussian.

    Attributes
    ----------
    mean : Tensor, shape (K, D)
    whiten : Tensor, shape (K, D, D)
        Lower-triangular inverse Cholesky factors of the shrunk covariances.
    classes : list of str
        The class names, in order.
    """

    mean: torch.Tensor
    whiten: torch.Tensor
    classes: list

    @classmethod
    def fit(cls, f: torch.Tensor, labels=None, shrinkage: float = 0.1) -> "GaussianDensity":
        """Fit one Gaussian per class to ``f`` (N, D): sample mean, covariance shrunk towards
        its diagonal,

        .. math:: \\Sigma_k = (1-\\lambda) S_k + \\lambda\\,\\mathrm{diag}(S_k) + 10^{-9} I .

        Parameters
        ----------
        f : Tensor, shape (N, D)
        labels : sequence of str, length N, optional
            Class of each vector (default: one class, ``"all"``).
        shrinkage : float
            ``lambda`` in [0, 1].

        Raises
        ------
        ValueError
            ``f`` not 2-D, a class with fewer than two vectors, labels of another length, or
            ``shrinkage`` outside [0, 1].
        """
        f = torch.as_tensor(f, dtype=torch.float64)
        if f.dim() != 2 or f.shape[0] < 2:
            raise ValueError(f"f must be (N, D) with N >= 2, got shape {tuple(f.shape)}")
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
        labels = np.full(f.shape[0], "all") if labels is None else np.asarray(labels, dtype=str)
        if labels.shape != (f.shape[0],):
            raise ValueError(f"labels must have one entry per vector ({f.shape[0]}), got shape {labels.shape}")
        classes = sorted(set(labels.tolist()))
        eye = torch.eye(f.shape[1], dtype=torch.float64)
        means, whitens = [], []
        for name in classes:
            part = f[torch.from_numpy(labels == name)]
            if part.shape[0] < 2:
                raise ValueError(f"class {name!r} has {part.shape[0]} vector(s); a Gaussian needs >= 2")
            mean = part.mean(0)
            centred = part - mean
            cov = centred.T @ centred / (part.shape[0] - 1)  # (D, D)
            cov = (1 - shrinkage) * cov + shrinkage * torch.diag(torch.diagonal(cov)) + 1e-9 * eye
            means.append(mean)
            whitens.append(torch.linalg.solve_triangular(torch.linalg.cholesky(cov), eye, upper=False))
        return cls(mean=torch.stack(means), whiten=torch.stack(whitens), classes=classes)

    def distance2(self, f: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance to the nearest class: ``f`` (..., D) -> (...)."""
        f = torch.as_tensor(f, dtype=torch.float64)
        z = torch.einsum("kde,...ke->...kd", self.whiten, f[..., None, :] - self.mean)  # (..., K, D)
        return (z * z).sum(-1).min(-1).values


def auroc(negatives, positives) -> float:
    """Area under the ROC curve of scores: P(positive > negative) + P(tie)/2 (Mann-Whitney U)."""
    neg, pos = np.asarray(negatives, float).ravel(), np.asarray(positives, float).ravel()
    if neg.size == 0 or pos.size == 0:
        raise ValueError("auroc needs at least one negative and one positive score")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (neg.size * pos.size))


def _block_nanmedians(z: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    """`_block_medians` leaving NaN values out (NaN for a block without any other value)."""
    height, width = z.shape
    nby, nbx = -(-height // block_rows), -(-width // block_cols)
    out = np.full((nby, nbx), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        for i in range(nby):
            rows = z[i * block_rows:(i + 1) * block_rows]
            for j in range(nbx):
                out[i, j] = np.nanmedian(rows[:, j * block_cols:(j + 1) * block_cols])
    return out


def _block_medians(z: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    """Medians of ``z`` over blocks of ``block_rows x block_cols`` (partial edge blocks: their pixels)."""
    height, width = z.shape
    nby, nbx = -(-height // block_rows), -(-width // block_cols)
    out = np.empty((nby, nbx))
    fy, fx = height // block_rows, width // block_cols  # whole blocks: one vectorised partition
    if fy and fx:
        n = block_rows * block_cols
        whole = z[:fy * block_rows, :fx * block_cols].reshape(fy, block_rows, fx, block_cols)
        whole = whole.transpose(0, 2, 1, 3).reshape(fy * fx, n)  # a contiguous copy
        k = (n - 1) // 2
        part = np.partition(whole, (k, n // 2), axis=1)
        out[:fy, :fx] = (0.5 * (part[:, k] + part[:, n // 2])).reshape(fy, fx)
    for i in range(nby):
        for j in range(nbx):
            if i >= fy or j >= fx:
                out[i, j] = np.median(z[i * block_rows:(i + 1) * block_rows, j * block_cols:(j + 1) * block_cols])
    return out


def noise_excess(image: np.ndarray, block_px: int = BLOCK_PX,
                 read_noise_e: float = READ_NOISE_REF_E, ignore=None) -> np.ndarray:
    """Per-block log ratio of the measured to the expected pixel noise of an image in electrons.

    With second differences along rows, ``d_j = x_{j-1} - 2 x_j + x_{j+1}`` (blind to the sky
    level and to linear gradients), and the level of the three pixels
    ``m_j = (x_{j-1} + x_j + x_{j+1}) / 3``, white Poisson + read noise gives
    ``Var d_j = 6 (m_j + sigma_read^2)``.  Each block's statistic is

    .. math:: r = \\log \\hat s^2, \\qquad
              \\hat s = 1.4826\\,\\mathrm{median}_j \\left|\\frac{d_j}{\\sqrt{6(\\max(m_j, 0)
              + \\sigma_{read}^2)}}\\right|

    over the pixels of every second row of the block (the median ignores the few pixels on
    stars and CRs).  ``r = 0`` for electrons with this
    read noise; data in ADU of gain ``g`` read as electrons give ``log(1/g)`` (sky-limited) to
    ``log(1/g^2)`` (read-noise-limited); a read noise ``k`` times larger gives up to ``log k^2``.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Electrons; ``W >= 3``.
    block_px : int
        Block side (px).
    read_noise_e : float
        Read noise assumed (e-), > 0.
    ignore : ndarray of bool, shape (H, W), optional
        Pixels left out: a second difference that touches one is not counted (a block with
        none left gives NaN).  Ignored pixels filled with one value would read as noise-free.

    Returns
    -------
    ndarray, shape (ceil(H / block_px), ceil(W / block_px)), float64
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 3:
        raise ValueError(f"image must be 2-D with at least 3 columns, got shape {x.shape}")
    if not read_noise_e > 0:
        raise ValueError(f"read_noise_e must be > 0, got {read_noise_e!r}")
    height, width = x.shape
    rows = x[::ROW_STEP]  # (ceil(H / ROW_STEP), W): every other row is enough and twice as fast
    z = np.empty_like(rows)  # z_j belongs to the centre pixel j; the edge columns copy their neighbour
    centre = z[:, 1:-1]
    np.add(rows[:, :-2], rows[:, 2:], out=centre)
    level = (centre + rows[:, 1:-1]) * np.float32(1.0 / 3.0)
    centre -= 2.0 * rows[:, 1:-1]
    np.maximum(level, 0.0, out=level)
    level += np.float32(read_noise_e ** 2)
    np.abs(centre, out=centre)
    centre /= np.sqrt(6.0 * level)
    z[:, 0], z[:, -1] = z[:, 1], z[:, -2]
    if ignore is not None and np.any(ignore):
        bad = np.asarray(ignore, dtype=bool)[::ROW_STEP]
        touched = np.zeros_like(bad)
        touched[:, 1:-1] = bad[:, :-2] | bad[:, 1:-1] | bad[:, 2:]
        touched[:, 0], touched[:, -1] = touched[:, 1], touched[:, -2]
        z[touched] = np.nan
        s = _block_nanmedians(z, block_px // ROW_STEP, block_px)
    else:
        s = _block_medians(z, block_px // ROW_STEP, block_px)
    s *= _MAD_TO_SIGMA
    return np.log(np.maximum(s, 1e-6) ** 2)


def block_level(image: np.ndarray, block_px: int = BLOCK_PX, read_noise_e: float = READ_NOISE_REF_E,
                ignore=None) -> np.ndarray:
    """Per-block log level of an image in electrons: the sky and sources' level a block sits at.

    .. math:: \\ell = \\log\\left(\\max(\\mathrm{median}_j\\, x_j, 0) + \\sigma_{read}^2\\right)

    over the pixels of every second row of the block (as `noise_excess`; ignored pixels left out,
    NaN for a block without any other).  The read-noise term keeps the log finite for a
    sky-subtracted frame and puts every level below it on one floor.  A model that sees its
    input standardised (deepCR's ``WFC3-UVIS`` and models adapted from it) cannot see the level
    in its features; this statistic tells a ground-based frame's sky of thousands of electrons
    from an HST frame's tens.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Electrons.
    block_px : int
    read_noise_e : float
        > 0.
    ignore : ndarray of bool, shape (H, W), optional

    Returns
    -------
    ndarray, shape (ceil(H / block_px), ceil(W / block_px)), float64
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {x.shape}")
    if not read_noise_e > 0:
        raise ValueError(f"read_noise_e must be > 0, got {read_noise_e!r}")
    rows = x[::ROW_STEP]
    if ignore is not None and np.any(ignore):
        rows = np.where(np.asarray(ignore, dtype=bool)[::ROW_STEP], np.float32(np.nan), rows)
        level = _block_nanmedians(rows, block_px // ROW_STEP, block_px)
    else:
        level = _block_medians(rows, block_px // ROW_STEP, block_px)
    return np.log(np.maximum(level, 0.0) + read_noise_e ** 2)


class BlockSums:
    """Per-block sums of a bottleneck map that arrives tile by tile (as in tiled prediction).

    Parameters
    ----------
    shape : (int, int)
        Image shape (px), each a multiple of 2.
    channels : int
        Bottleneck channels (``2h``).
    block_px : int
        Block side in image px (even).
    """

    def __init__(self, shape, channels: int, block_px: int = BLOCK_PX):
        self.block_low = block_px // 2
        self.low_shape = (shape[0] // 2, shape[1] // 2)
        self.nby, self.nbx = (-(-n // self.block_low) for n in self.low_shape)
        self.sums = torch.zeros(channels, self.nby, self.nbx, dtype=torch.float64)

    def _one_hot(self, start: int, length: int, like: torch.Tensor) -> torch.Tensor:
        """Indicators (length, n) of the n blocks that px ``start .. start+length-1`` fall in."""
        ids = torch.arange(start, start + length, device=like.device) // self.block_low
        return F.one_hot(ids - ids[0]).to(like.dtype)

    def add(self, low: torch.Tensor, row0: int, col0: int) -> None:
        """Add a tile's bottleneck core ``low`` (C, h, w) whose top-left is low-res (row0, col0).

        Two matrix products with one-hot block indicators, ``R^T A C`` (``A`` read once, as
        rows of ``w * C`` values: a view of a channels-last map).
        """
        channels, h, w = low.shape
        rows, cols = self._one_hot(row0, h, low), self._one_hot(col0, w, low)  # (h, nr), (w, nc)
        by_row = rows.T @ low.permute(1, 2, 0).reshape(h, w * channels)  # (nr, w*C)
        sums = torch.einsum("bwc,wd->cbd", by_row.reshape(-1, w, channels), cols)  # (C, nr, nc)
        b0, c0 = row0 // self.block_low, col0 // self.block_low
        self.sums[:, b0:b0 + sums.shape[1], c0:c0 + sums.shape[2]] += sums.double().cpu()

    def means(self) -> torch.Tensor:
        """Block means (C, nby, nbx) (edge blocks divided by the pixels they hold)."""
        rows = torch.full((self.nby,), float(self.block_low), dtype=torch.float64)
        cols = torch.full((self.nbx,), float(self.block_low), dtype=torch.float64)
        rows[-1] = self.low_shape[0] - self.block_low * (self.nby - 1)
        cols[-1] = self.low_shape[1] - self.block_low * (self.nbx - 1)
        return self.sums / (rows[:, None] * cols[None, :])


def features_from_block_means(means: torch.Tensor) -> torch.Tensor:
    """``log(FEATURE_EPS + m)`` of block means (C, nby, nbx) -> (nby, nbx, C) float64."""
    return torch.log(FEATURE_EPS + means.double()).permute(1, 2, 0)
