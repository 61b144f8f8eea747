"""ACS/WFC filters: pivot wavelength, AB zeropoint, sky rate, charge diffusion and colours,
and the photometry that turns magnitudes into electrons.

References (keys as in `cosmiq_pyro.data.simulate`): S05 (zeropoints, pivot wavelengths),
ACS-IDT (sky rates), IHB 5.6.1 (charge-diffusion kernels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .detector import PIXEL_SCALE_ARCSEC

__all__ = ["FilterSpec", "FILTERS"]


@dataclass(frozen=True)
class FilterSpec:
    """What the simulator knows about one ACS/WFC filter.

    Attributes
    ----------
    pivot_nm : float
        Pivot wavelength (S05, rounded to 1 nm); the PSF is drawn monochromatic here.
    zeropoint_ab : float
        AB magnitude giving 1 e-/s (S05, WFC).
    sky_e_per_s : (float, float)
        Sky rate range per pixel, low to high zodiacal light (ACS-IDT table).
    diffusion_sigma_px : float
        Gaussian sigma of CCD charge diffusion.  At F435W it reproduces the IHB 5.6.1 WFC
        kernel at 4000 A (centre 0.40, sides 0.11, corners 0.04 -> sigma = 0.56 px); the IHB
        says diffusion weakens to the red, which we model as sigma proportional to
        lambda^(-1/2) (an assumption, not a handbook table).
    colour_mag : (float, float)
        Mean and spread of (m_filter - m_F606W) for stars and galaxies (rough, assumed).
    """

    pivot_nm: float
    zeropoint_ab: float
    sky_e_per_s: tuple
    diffusion_sigma_px: float
    colour_mag: tuple


def _diffusion_sigma(pivot_nm):
    return 0.56 * math.sqrt(432.0 / pivot_nm)


FILTERS = {
    "F435W": FilterSpec(432.0, 25.673, (0.0108, 0.0360), _diffusion_sigma(432.0), (0.7, 0.4)),
    "F606W": FilterSpec(592.0, 26.486, (0.0510, 0.1701), _diffusion_sigma(592.0), (0.0, 0.0)),
    "F814W": FilterSpec(806.0, 25.937, (0.0453, 0.1511), _diffusion_sigma(806.0), (-0.5, 0.3)),
}


def _mag_to_e(mag, filter, exptime_s):
    """Electrons from an AB magnitude: ``t * 10**(-0.4 (m - ZP))`` (S05 zeropoints)."""
    return exptime_s * 10.0 ** (-0.4 * (np.asarray(mag) - FILTERS[filter].zeropoint_ab))


def _colour(filter, n, rng):
    mean, spread = FILTERS[filter].colour_mag
    return mean + spread * rng.standard_normal(n)


def _surface_e(mu_mag_arcsec2, filter, exptime_s):
    """Electrons per pixel of a surface brightness mu (AB mag/arcsec^2, F606W-referenced)."""
    return float(_mag_to_e(mu_mag_arcsec2, filter, exptime_s)) * PIXEL_SCALE_ARCSEC**2
