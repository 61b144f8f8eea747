"""Parallel CTE trails: charge trapped during read-out and released into the pixels behind,
so stars, hot pixels and CRs grow faint tails away from the serial register.

References (keys as in `cosmiq_pyro.data.simulate`):

* **M10** -- Massey et al. 2010, MNRAS 401, 371 (pixel-based CTI correction for ACS/WFC) and
  Massey et al. 2014, MNRAS 439, 887, as coded in arCTIc's ``model_for_HST_ACS``
  (github.com/jkeger/arctic, ``arcticpy/main.py``): after SM4 the total trap density per
  pixel is ``1.011 * (-0.246591 + 0.00055898 * (JD - 2452334.5))``, split over three
  species as 1.27 : 3.38 : 2.85 with release times 0.74, 7.7 and 37 transfers (at the
  -81 C operating temperature); instant capture; a charge packet of n electrons reaches the
  fraction ``(n / 84700) ** 0.478`` of a pixel's traps.
* **IHB** 2.6 "CTE Considerations": deepCR's ACS/WFC frames are _flc (CTE-corrected by
  CALACS), and "for typical ACS backgrounds (> 30 e-), the parallel CTE correction algorithm
  has a 75 % reconstruction accuracy": we keep 25 % of the trail (`FLC_TRAIL_RESIDUAL`).
* **DHB** 4.2.1: WFC chips are read through serial registers at their outer edges, 2048 rows
  away at most; a frame is a cut-out at a random distance from its register.

The trap model, per column, is arCTIc's "express = 1" approximation: one pixel's traps see
every packet of the column in read-out order; what they capture from or release into a
packet is multiplied by the number of transfers that packet makes.  With ``f_s`` filled
traps of species s (density rho_s, release time tau_s) and a packet of n electrons:

    released = f_s (1 - exp(-1 / tau_s)),   reach = rho_s (n / w)^beta,
    captured = max(reach - (f_s - released), 0).

Filled traps are assumed to sit at the bottom of the pixel volume (one watermark per
species, where arCTIc keeps several): a simplification of M10.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ACS_LAUNCH_JD", "SM4_JD", "CTE_LATEST_JD", "TRAP_DENSITY_SM4_INTERCEPT",
           "TRAP_DENSITY_PER_DAY", "TRAP_SPECIES_SHARE", "TRAP_RELEASE_TRANSFERS",
           "WELL_FILL_POWER", "WELL_DEPTH_E", "FLC_TRAIL_RESIDUAL", "WFC_ROWS_PER_AMP",
           "trap_density", "cte_trail"]

ACS_LAUNCH_JD = 2452334.5  # M10 / arCTIc: ACS installation
SM4_JD = 2454968.0  # M10 / arCTIc: ACS repair in SM4 (May 2009)
CTE_LATEST_JD = 2460310.5  # 2024-01-01: latest date drawn (assumed range of the data)
TRAP_DENSITY_SM4_INTERCEPT = -0.246591 * 1.011  # M10 (arCTIc), traps per pixel after SM4
TRAP_DENSITY_PER_DAY = 0.00055898 * 1.011  # M10 (arCTIc), traps per pixel per day
TRAP_SPECIES_SHARE = (1.27, 3.38, 2.85)  # M10 (arCTIc), relative densities
TRAP_RELEASE_TRANSFERS = (0.74, 7.7, 37.0)  # M10 (arCTIc), at -81 C
WELL_FILL_POWER = 0.478  # M10 (arCTIc): beta
WELL_DEPTH_E = 84700.0  # M10 (arCTIc): w
FLC_TRAIL_RESIDUAL = 0.25  # IHB 2.6: the _flc correction restores ~75 % of the trail
WFC_ROWS_PER_AMP = 2048  # DHB 4.2.1 / IHB Table 3.1: 2048 rows between the far edge and a register


def trap_density(jd):
    """Total trap density per pixel after SM4 at Julian date ``jd`` (M10 via arCTIc)."""
    return TRAP_DENSITY_SM4_INTERCEPT + TRAP_DENSITY_PER_DAY * (float(jd) - ACS_LAUNCH_JD)


def cte_trail(charge_e, rows_to_register, total_density, residual=FLC_TRAIL_RESIDUAL):
    """Charge after parallel read-out through traps, keeping ``residual`` of the change.

    Parameters
    ----------
    charge_e : numpy.ndarray, shape (H, W)
        Charge per pixel (electrons) before read-out; the serial register lies below row 0,
        so packets move towards row 0 and trails grow towards higher rows.
    rows_to_register : int
        Transfers of the packets in row 0 minus one (the cut-out's distance from the register).
    total_density : float
        Traps per pixel (all species).
    residual : float
        Fraction of the trailing kept: 1 for a raw _flt, `FLC_TRAIL_RESIDUAL` for an _flc.

    Returns
    -------
    numpy.ndarray of float64, shape (H, W)
        ``charge + residual * (trailed - charge)``.
    """
    q = np.asarray(charge_e, dtype=float)
    h, w = q.shape
    share = np.asarray(TRAP_SPECIES_SHARE) / sum(TRAP_SPECIES_SHARE)
    rho = (max(float(total_density), 0.0) * share)[:, None]  # (S, 1)
    keep = np.exp(-1.0 / np.asarray(TRAP_RELEASE_TRANSFERS))[:, None]  # (S, 1)
    n = np.clip(q, 0.0, WELL_DEPTH_E)  # (H, W)
    volume = (n / WELL_DEPTH_E) ** WELL_FILL_POWER  # (H, W): share of the traps a packet reaches
    n0 = np.median(n, axis=0)  # (W,) background per column
    filled = rho * (n0 / WELL_DEPTH_E) ** WELL_FILL_POWER  # (S, W): traps filled by the sky
    change = np.empty_like(q)
    for i in range(h):
        transfers = rows_to_register + i + 1
        released = filled * (1.0 - keep)  # (S, W)
        filled -= released
        captured = np.maximum(rho * volume[i] - filled, 0.0)  # (S, W)
        # a packet cannot lose more than it holds: scale the capture down where it would
        lost = captured.sum(axis=0) * transfers  # (W,)
        over = lost > n[i]
        if over.any():
            captured[:, over] *= n[i, over] / lost[over]
        filled += captured
        change[i] = (released.sum(axis=0) - captured.sum(axis=0)) * transfers
    return q + residual * change


def _cte_setup(size, rng):
    """Per-frame CTE draws: observation date (uniform between SM4 and `CTE_LATEST_JD`), the
    cut-out's distance from its register (uniform over the chip's rows) and the read-out
    direction (towards row 0 or towards the last row; the two WFC chips read out at
    opposite edges)."""
    jd = float(rng.uniform(SM4_JD, CTE_LATEST_JD))
    rows = int(rng.integers(0, max(WFC_ROWS_PER_AMP - size, 0) + 1))
    towards_row0 = bool(rng.random() < 0.5)
    return dict(cte_jd=jd, cte_trap_density=trap_density(jd), cte_rows_to_register=rows,
                cte_readout_towards_row0=towards_row0)


def _apply_cte(charge_e, setup, residual=FLC_TRAIL_RESIDUAL):
    """`cte_trail` with the frame's draws from `_cte_setup` (flipped for read-out upwards)."""
    flip = not setup["cte_readout_towards_row0"]
    q = charge_e[::-1] if flip else charge_e
    out = cte_trail(q, setup["cte_rows_to_register"], setup["cte_trap_density"], residual)
    return out[::-1] if flip else out
