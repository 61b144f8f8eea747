"""The ACS/WFC CCD: pixel constants, dark current, bad columns, full well and vertical
bleeding, Poisson and read noise, and the gain ADC.  Warm and hot pixels are in `hot_pixels`,
CTE trails in `cte`.

References (keys as in `cosmiq_pyro.data.simulate`): IHB Table 3.1 (pixel scale and pitch, gain,
read noise, dark current), IHB 4.3.1 (saturation and bleeding), ACS-DQ (DQ 128: bad columns,
flagged in the superbias, hence ``ignore``).
"""
from __future__ import annotations

import numpy as np

from ...instruments import get_instrument

# The camera's constants live in its spec (cosmiq_pyro/instruments/specs/ACS-WFC.toml, where
# each cites its source): IHB Table 3.1 for scale, pitch, gain (2.0 e-/DN, the default of
# 0.5/1.0/1.4/2.0), read noise (3.75-5.65 e- over amplifiers) and dark current (0.0161 e-/s,
# Cycle 32); IHB 4.3.1 for the full well (72,000-82,000 e-).
_ACS = get_instrument("ACS-WFC").detector
PIXEL_SCALE_ARCSEC = _ACS.pixel_scale_arcsec
PIXEL_PITCH_UM = _ACS.pixel_pitch_um
GAIN_E_PER_ADU = _ACS.gain_e_per_adu
READ_NOISE_RANGE_E = _ACS.read_noise_e
DARK_E_PER_S = _ACS.dark_e_per_s
SATURATION_RANGE_E = _ACS.saturation_e
# mean number of bad-column segments per 256 columns: assumed (no handbook count found; the
# ACS anomalies page and ACS-DQ list bad columns without a rate)
BAD_COLUMNS_PER_256 = 1.0


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

    with lambda = ``expected_e`` and gain g = `GAIN_E_PER_ADU` (the ADC step, IHB Table 3.1).
    """
    return _bleed(rng.poisson(expected_e), full_well_e)


def _digitise(charge_e, read_noise_e, rng):
    """Read noise and the gain ADC: ``g round((charge + N(0, rn^2)) / g)`` as float32 e-."""
    read = charge_e + rng.normal(0.0, read_noise_e, np.shape(charge_e))
    return (GAIN_E_PER_ADU * np.round(read / GAIN_E_PER_ADU)).astype(np.float32)


def _bad_columns(shape, exptime_s, rng):
    """Bad-column segments: Poisson(`BAD_COLUMNS_PER_256` per 256 columns), each a whole
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
    n_segments = int(rng.poisson(BAD_COLUMNS_PER_256 * nx / 256.0))
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
