"""Warm and hot pixels: which ones a real _flt/_flc frame flags in its DQ array (they go to
``ignore``) and which ones it does not (they stay in the image and are label 0: they are in
every exposure, so AstroDrizzle's median has them and driz_cr never calls them CRs).

References (keys as in `cosmiq_pyro.data.simulate`):

* **IHB-C14** 4.3.5, Table 4.3: creation rate of new WFC pixels with dark current above a
  threshold, per day over the whole WFC: 815 (> 0.02 e-/s), 616 (> 0.04), 480 (> 0.06),
  390 (> 0.08), 328 (> 0.10), 16 (> 1.00); monthly anneals heal part of them.
* **ACS-DQ** -- ACS Data Quality Flags page (stsci.edu/hst/instrumentation/acs/data-analysis/
  dq-flag-definitions): DQ 16 = hot, dark > 0.14 e-/s; DQ 64 = warm, 0.06-0.14 e-/s; both
  "flagged in superdark DQ arrays".  A pixel below 0.06 e-/s is never flagged.
* **ISR 2002-06** (Riess, Mutchler & Van Orsow): ~1200 new WFC hot pixels a day, anneals
  heal only 45-50 %, ~2 % of the CCD hot within ~3 years (the ACS-WFC spec's ``hot_pixel_fraction``).
* **DHB** -- ACS Data Handbook 4.3.1: a superdark needs about a month of darks, and an
  out-of-date superdark leaves hot pixels "uncorrected and unflagged".
* **IHB** Table 3.1: the WFC is two 4096 x 2048 CCDs.

Per frame three populations are drawn, each pixel's dark rate from the Table 4.3 cumulative
distribution (log-log interpolation between its thresholds; above 1 e-/s the 0.1-1 e-/s
power law is continued):

1. standing pixels above the DQ threshold (0.06 e-/s): a fraction of the frame drawn
   log-uniformly in the spec's ``hot_pixel_fraction``; flagged, so ``ignore``;
2. standing warm pixels of 0.02-0.06 e-/s, as many relative to (1) as Table 4.3 creates
   (335 : 480); never flagged, label 0;
3. pixels above 0.06 e-/s born after the superdark's darks: Table 4.3's 480 a day times a lag
   uniform in 0-`SUPERDARK_LAG_DAYS_MAX` days (assumed: half of the ~monthly cycle of
   darks, DHB 4.3.1), scaled to the frame's share of the WFC; unflagged, label 0.

A camera whose spec says ``hot_pixel_model = "flagged-only"`` (DECam: its bad-pixel masks flag
the known defects) gets population 1 alone, its rates from the same distribution (they are
ignored pixels, so their values hardly matter).
"""
from __future__ import annotations

import numpy as np

__all__ = ["WFC_PIXELS", "HOT_PIXEL_THRESHOLDS_E_PER_S", "HOT_PIXEL_CREATION_PER_DAY",
           "DQ_WARM_THRESHOLD_E_PER_S", "SUPERDARK_LAG_DAYS_MAX", "hot_pixel_rate_quantile"]

WFC_PIXELS = 2 * 4096 * 2048  # IHB Table 3.1: two 4096 x 2048 CCDs
# IHB-C14 Table 4.3 (WFC): new pixels per day with dark current above each threshold (e-/s)
HOT_PIXEL_THRESHOLDS_E_PER_S = (0.02, 0.04, 0.06, 0.08, 0.10, 1.00)
HOT_PIXEL_CREATION_PER_DAY = (815.0, 616.0, 480.0, 390.0, 328.0, 16.0)
DQ_WARM_THRESHOLD_E_PER_S = 0.06  # ACS-DQ: DQ 64 from 0.06 e-/s, DQ 16 above 0.14 e-/s
SUPERDARK_LAG_DAYS_MAX = 14.0  # assumed (see module notes)


def hot_pixel_rate_quantile(u):
    r"""Dark rate (e-/s) at upper-tail probability ``u`` of the Table 4.3 distribution.

    With :math:`N(>r)` the creation rate above r (IHB-C14 Table 4.3), interpolated linearly
    in :math:`(\log r, \log N)` and continued above 1 e-/s with the slope between 0.1 and
    1 e-/s, returns r such that :math:`N(>r) / N(>0.02) = u`.

    Parameters
    ----------
    u : array_like in (0, 1]

    Returns
    -------
    numpy.ndarray of float
    """
    log_r = np.log(HOT_PIXEL_THRESHOLDS_E_PER_S)
    log_n = np.log(np.asarray(HOT_PIXEL_CREATION_PER_DAY) / HOT_PIXEL_CREATION_PER_DAY[0])
    target = np.log(np.asarray(u, dtype=float))
    inside = np.interp(-target, -log_n, log_r)  # log_n decreases with r
    slope = (log_n[-1] - log_n[-2]) / (log_r[-1] - log_r[-2])  # about -1.31
    beyond = log_r[-1] + (target - log_n[-1]) / slope
    return np.exp(np.where(target < log_n[-1], beyond, inside))


def _fraction_above(rate_e_per_s):
    """N(> rate) / N(> 0.02 e-/s) from Table 4.3 (rate within its thresholds)."""
    log_r = np.log(HOT_PIXEL_THRESHOLDS_E_PER_S)
    n = np.log(np.asarray(HOT_PIXEL_CREATION_PER_DAY) / HOT_PIXEL_CREATION_PER_DAY[0])
    return float(np.exp(np.interp(np.log(rate_e_per_s), log_r, n)))


def _hot_pixels(shape, exptime_s, fraction_range, unflagged, rng):
    """Dark charge (e-) of warm and hot pixels, the flagged ones, and counts.

    ``fraction_range``: (low, high) of the flagged fraction (log-uniform); ``unflagged``:
    whether populations 2 and 3 (module notes) are drawn too.

    Returns
    -------
    dark_extra_e : numpy.ndarray, shape ``shape``
        Extra dark charge of warm and hot pixels in ``exptime_s``.
    flagged : numpy.ndarray of bool
        Pixels a superdark flags (DQ 16 or 64): the standing ones above 0.06 e-/s.
    counts : dict
        ``n_hot_flagged``, ``n_warm_unflagged`` (standing, below 0.06 e-/s) and
        ``n_hot_new_unflagged`` (born after the superdark).
    """
    npix = int(np.prod(shape))
    p_dq = _fraction_above(DQ_WARM_THRESHOLD_E_PER_S)  # 480 / 815
    lo, hi = np.log(fraction_range)
    n_flagged = int(rng.binomial(npix, np.exp(rng.uniform(lo, hi))))
    n_warm = n_new = 0
    if unflagged:
        n_warm = int(rng.poisson(n_flagged * (1.0 - p_dq) / p_dq))
        lag_days = rng.uniform(0.0, SUPERDARK_LAG_DAYS_MAX)
        n_new = int(rng.poisson(HOT_PIXEL_CREATION_PER_DAY[2] * lag_days * npix / WFC_PIXELS))
    n = min(n_flagged + n_warm + n_new, npix)
    where = rng.choice(npix, size=n, replace=False)
    # tail probabilities: flagged and new above the DQ threshold, warm below it
    u = np.concatenate([rng.uniform(0.0, p_dq, n_flagged), rng.uniform(p_dq, 1.0, n_warm),
                        rng.uniform(0.0, p_dq, n_new)])[:n]
    u = np.maximum(u, 1e-12)
    dark_extra = np.zeros(shape)
    dark_extra.ravel()[where] = hot_pixel_rate_quantile(u) * exptime_s
    flagged = np.zeros(shape, bool)
    flagged.ravel()[where[:n_flagged]] = True
    n_flagged = min(n_flagged, n)
    n_warm = min(n_warm, n - n_flagged)
    counts = dict(n_hot_flagged=n_flagged, n_warm_unflagged=n_warm,
                  n_hot_new_unflagged=n - n_flagged - n_warm)
    return dark_extra, flagged, counts
