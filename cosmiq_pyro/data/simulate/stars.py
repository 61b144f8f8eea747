"""The bright stars of a simulated frame: their peak pixels and a likelihood weight map on their cores.

Ground-based users of CR tools report the cores of bright stars flagged as cosmic rays; the
acceptance measures it on the pixels within `STAR_CORE_RADIUS_PX` of the peaks of stars with
S/N > `STAR_MIN_SNR` (`evaluation.metrics.star_core_flags`), and training can weight the
same pixels more (`star_core_weights`, `data.SimulatedDataset`'s ``star_core_weight``).
"""
from __future__ import annotations

import numpy as np

from ...evaluation.metrics.stars import star_core_mask, star_snr
from .frames import SimulatedFrame

__all__ = ["STAR_MIN_SNR", "STAR_CORE_RADIUS_PX", "bright_star_peaks", "star_core_weights"]

STAR_MIN_SNR = 50.0        # bright stars: S/N > 50 (CCD equation, `metrics.star_snr`)
STAR_CORE_RADIUS_PX = 2.0  # a star's core: pixels within 2 px of its peak pixel


def bright_star_peaks(frame: SimulatedFrame, pixel_scale_arcsec: float,
                      min_snr: float = STAR_MIN_SNR) -> np.ndarray | None:
    """Peak pixels (row, column) of the frame's stars with S/N > ``min_snr``: an (n, 2) int64
    array; None when the frame has no seeing-limited PSF (no FWHM, so no S/N, is defined)."""
    fwhm_arcsec = frame.meta.get("seeing_fwhm_arcsec")
    if fwhm_arcsec is None:
        return None
    snr = star_snr(frame.star_e, frame.sky_e, frame.meta["read_noise_e"], fwhm_arcsec / pixel_scale_arcsec)
    xy = frame.star_xy[snr > min_snr]  # (n, 2): x, y
    return np.rint(xy[:, ::-1]).astype(np.int64)


def star_core_weights(frame: SimulatedFrame, pixel_scale_arcsec: float, weight) -> np.ndarray:
    """Per-pixel likelihood weights on the cores of the frame's bright stars (`bright_star_peaks`,
    `STAR_CORE_RADIUS_PX`), 1 elsewhere (everywhere for a frame without a seeing-limited PSF): a
    (H, W) float32 array.

    ``weight``: one number for the core pixels of both classes, or ``(clean, cr)``: one for the
    core pixels the label calls clean and one for its CR pixels.  Weighting both classes alike
    leaves the optimal probability of each pixel unchanged (the fit spends more of the net on
    star cores); weighting clean pixels by ``u`` alone moves the optimal logit there by
    ``-ln u``, for a model that is over-confident on star cores.
    """
    clean, cr = (weight, weight) if np.ndim(weight) == 0 else weight
    weights = np.ones(frame.image.shape, np.float32)
    peaks = bright_star_peaks(frame, pixel_scale_arcsec)
    if peaks is not None:
        core = star_core_mask(frame.image.shape, peaks, STAR_CORE_RADIUS_PX)
        weights[core & ~frame.mask] = clean
        weights[core & frame.mask] = cr
    return weights
