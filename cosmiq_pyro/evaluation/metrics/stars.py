"""False alarms on stars: how much of the cores of bright stars a CR map flags.

Ground-based users of deepCR and Cosmic-CoNN report the cores of bright stars flagged as cosmic
rays; this measures it on frames whose star positions are known (`data.simulate`'s
``SimulatedFrame.star_xy``).  Pure numpy, like the rest of `metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._validation import _check_binary, _check_prob, _check_shapes

__all__ = ["star_snr", "star_core_mask", "StarCoreFlags", "star_core_flags"]


def star_snr(flux_e, background_e, read_noise_e, fwhm_px):
    r"""Signal-to-noise ratio of point sources by the CCD equation.

    .. math::

        \mathrm{S/N} = \frac{F}{\sqrt{F + n_\mathrm{pix}\,(b + \sigma_r^2)}},
        \qquad n_\mathrm{pix} = \pi\,\mathrm{FWHM}^2,

    the star's whole charge ``F`` measured in a circular aperture of radius one FWHM (a near
    optimal aperture for a Moffat or Gaussian profile) on a background of ``b`` electrons per
    pixel with read noise :math:`\sigma_r`.

    Parameters
    ----------
    flux_e : array_like
        Total charge of each star (electrons).
    background_e : float or array_like
        Background under the star per pixel (sky plus dark, electrons), >= 0.
    read_noise_e : float
        Read noise (electrons), >= 0.
    fwhm_px : float
        PSF FWHM in pixels, > 0.

    Returns
    -------
    numpy.ndarray
        S/N per star (float64, the shape of ``flux_e``).
    """
    flux = np.asarray(flux_e, np.float64)
    if np.any(~np.isfinite(flux)) or np.any(flux < 0):
        raise ValueError("flux_e must be finite and >= 0 (electrons)")
    background = np.asarray(background_e, np.float64)
    if np.any(~np.isfinite(background)) or np.any(background < 0):
        raise ValueError(f"background_e must be finite and >= 0 (electrons per pixel), got {background_e!r}")
    if not (np.isfinite(read_noise_e) and read_noise_e >= 0):
        raise ValueError(f"read_noise_e must be finite and >= 0, got {read_noise_e!r}")
    if not (np.isfinite(fwhm_px) and fwhm_px > 0):
        raise ValueError(f"fwhm_px must be finite and > 0, got {fwhm_px!r}")
    n_pix = np.pi * float(fwhm_px) ** 2
    noise = np.sqrt(flux + n_pix * (background + float(read_noise_e) ** 2))
    return np.divide(flux, noise, out=np.zeros_like(noise), where=noise > 0)


def star_core_mask(shape, peaks_rc, radius_px: float = 2.0) -> np.ndarray:
    """Pixels whose centres lie within ``radius_px`` of a star's peak pixel (Euclidean distance
    between pixel centres, the peak's own pixel included): a (H, W) bool mask.

    Parameters
    ----------
    shape : (int, int)
        (H, W) of the frame.
    peaks_rc : array_like of int, shape (n, 2)
        Peak pixels as (row, column); peaks off the frame add the part of their disc that is on it.
    radius_px : float
        Radius in pixels (2: the 13 pixels of a radius-2 disc around an interior peak).
    """
    height, width = (int(s) for s in shape)
    peaks = np.asarray(peaks_rc).reshape(-1, 2)
    if peaks.size and not np.issubdtype(peaks.dtype, np.integer):
        raise TypeError(f"peaks_rc must hold integer pixel indices (row, column), got dtype {peaks.dtype}")
    if not (np.isfinite(radius_px) and radius_px >= 0):
        raise ValueError(f"radius_px must be finite and >= 0, got {radius_px!r}")
    mask = np.zeros((height, width), bool)
    reach = int(np.floor(radius_px))
    for dr in range(-reach, reach + 1):
        for dc in range(-reach, reach + 1):
            if dr * dr + dc * dc > radius_px * radius_px:
                continue
            rows, cols = peaks[:, 0] + dr, peaks[:, 1] + dc
            on = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
            mask[rows[on], cols[on]] = True
    return mask


@dataclass(frozen=True)
class StarCoreFlags:
    """Star-core pixels and how many of them are flagged (counts add up over frames).

    Attributes
    ----------
    n_px : int
        Star-core pixels counted (not ignored, not truth CR pixels).
    n_flagged : int
        Of those, pixels with ``p > threshold``.
    """

    n_px: int
    n_flagged: int

    @property
    def fraction(self) -> float:
        """``n_flagged / n_px`` (NaN without star-core pixels)."""
        return self.n_flagged / self.n_px if self.n_px else float("nan")

    def __add__(self, other: "StarCoreFlags") -> "StarCoreFlags":
        return StarCoreFlags(self.n_px + other.n_px, self.n_flagged + other.n_flagged)


def star_core_flags(p, y, peaks_rc, *, radius_px: float = 2.0, threshold: float = 0.5,
                    ignore: Optional[np.ndarray] = None) -> StarCoreFlags:
    """How many pixels near the peaks of stars a CR map flags.

    The pixels counted are those within ``radius_px`` of a peak (`star_core_mask`) that are
    neither ignored nor truth CR pixels (a CR that lands on a star is rightly flagged); a pixel
    is flagged when ``p > threshold``.

    Parameters
    ----------
    p : array_like, shape (H, W)
        CR probability map.
    y : array_like of bool, shape (H, W)
        Truth CR mask.
    peaks_rc : array_like of int, shape (n, 2)
        Peak pixels (row, column) of the stars to test (e.g. those with S/N > 50, `star_snr`).
    radius_px, threshold : float
    ignore : array_like of bool, shape (H, W), optional

    Returns
    -------
    StarCoreFlags
    """
    p = _check_prob(p)
    y = _check_binary(y, "y")
    ignore = None if ignore is None else _check_binary(ignore, "ignore")
    _check_shapes(p=p, y=y, ignore=ignore)
    if p.ndim != 2:
        raise ValueError(f"p must be one (H, W) map, got shape {p.shape}")
    core = star_core_mask(p.shape, peaks_rc, radius_px) & ~y
    if ignore is not None:
        core &= ~ignore
    return StarCoreFlags(n_px=int(core.sum()), n_flagged=int((core & (p > threshold)).sum()))
