"""The CCD: bad columns, full well and vertical bleeding, Poisson and read noise, and the gain
ADC.  Warm and hot pixels are in `hot_pixels`, CTE trails in `cte`.  The numbers (gain, read
noise, full well, dark current, bad-column rate) are the camera's spec (``[detector]`` and
``[simulation.defects]``), cited there.

Bad columns are flagged in a real frame's DQ array (ACS-DQ: DQ 128, from the superbias), hence
``ignore``; bleeding follows the ACS IHB 4.3.1 description, which holds for any CCD.
"""
from __future__ import annotations

import numpy as np

__all__ = []


def _bleed(charge, full_well):
    """Vertical blooming: charge above ``full_well`` spills up and down its column.

    Each run of over-full pixels keeps ``full_well`` and hands its excess, half up and half
    down the column, to the next pixels, filling each to ``full_well`` before moving on
    (IHB 4.3.1: "excess charge will flow into adjacent pixels along the column").  Charge
    that reaches the frame edge is lost.  Returns the new charge (float64) and a bool map of
    saturated and bled pixels.
    """
    charge = charge.astype(float)
    touched = charge > full_well
    if not touched.any():
        return charge, touched
    for j in np.flatnonzero(touched.any(axis=0)):
        col = charge[:, j]
        rows = np.flatnonzero(col > full_well)
        for run in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
            a, b = run[0], run[-1] + 1
            excess = float((col[a:b] - full_well).sum())
            col[a:b] = full_well
            for seg, rows_seg in ((col[b:], np.arange(b, col.size)),
                                  (col[:a][::-1], np.arange(a - 1, -1, -1))):
                filled = _fill(seg, excess / 2.0, full_well)
                touched[rows_seg[:filled], j] = True
    return charge, touched


def _fill(seg, amount, full_well):
    """Pour ``amount`` into ``seg`` (a view) pixel by pixel up to ``full_well``; returns the
    number of pixels that received charge."""
    room = np.maximum(full_well - seg, 0.0)
    cum = np.cumsum(room)
    k = int(np.searchsorted(cum, amount))
    if k >= seg.size:
        seg[:] += room
        return seg.size
    seg[:k] += room[:k]
    seg[k] += amount - (cum[k - 1] if k else 0.0)
    return k + 1


def _expose(expected_e, full_well_e, rng):
    r"""Poisson charge of ``expected_e`` bled along columns (`_bleed`): the charge (float64)
    and the bool map of saturated and bled pixels.

    With `_digitise` after the read-out transfer T (CTE trails, `cte`) the image is

    .. math:: \mathrm{image} = g\,\mathrm{round}\big((T(\mathrm{bleed}(\mathrm{Poisson}(\lambda)))
              + \mathcal{N}(0, \sigma_{read}^2)) / g\big)

    with lambda = ``expected_e`` and g the spec's gain (the ADC step).
    """
    return _bleed(rng.poisson(expected_e), full_well_e)


def _digitise(charge_e, read_noise_e, gain_e_per_adu, rng):
    """Read noise and the gain ADC: ``g round((charge + N(0, rn^2)) / g)`` as float32 e-."""
    read = charge_e + rng.normal(0.0, read_noise_e, np.shape(charge_e))
    return (gain_e_per_adu * np.round(read / gain_e_per_adu)).astype(np.float32)


def _bad_columns(shape, exptime_s, per_256, rng):
    """Bad-column segments: Poisson(``per_256`` per 256 columns), each a whole
    column or a part from one end, either hot (extra dark current 0.02-0.3 e-/s) or of low
    response (x 0.2-0.8, a charge trap).  All flagged (DQ 128), so ``ignore``.

    Returns
    -------
    dark_extra : ndarray
        Extra dark charge (e-) of hot columns.
    response : ndarray
        Multiplicative response to light (< 1 on low-response columns, 1 elsewhere).
    defect : ndarray of bool
        Pixels of bad columns.
    n_segments : int
    """
    ny, nx = shape
    dark_extra = np.zeros(shape)
    response = np.ones(shape)
    defect = np.zeros(shape, bool)
    n_segments = int(rng.poisson(per_256 * nx / 256.0))
    for _ in range(n_segments):
        j = int(rng.integers(0, nx))
        if rng.random() < 0.5:
            r0, r1 = 0, ny
        elif rng.random() < 0.5:
            r0, r1 = int(rng.integers(0, ny - 1)), ny
        else:
            r0, r1 = 0, int(rng.integers(1, ny))
        if rng.random() < 0.5:  # hot column: elevated dark current
            dark_extra[r0:r1, j] += rng.uniform(0.02, 0.3) * exptime_s
        else:  # low-response column (charge trap)
            response[r0:r1, j] *= rng.uniform(0.2, 0.8)
        defect[r0:r1, j] = True
    return dark_extra, response, defect, n_segments
