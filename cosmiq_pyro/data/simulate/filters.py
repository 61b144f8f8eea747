"""Photometry of a filter (`cosmiq_pyro.instruments.simulation.FilterSim`: pivot wavelength, AB
zeropoint, sky rate, colours): magnitudes to electrons.  The numbers are the camera's spec's
``[simulation.filters.NAME]`` tables, cited there.
"""
from __future__ import annotations

import numpy as np


def _mag_to_e(mag, band, exptime_s):
    """Electrons from an AB magnitude: ``t * 10**(-0.4 (m - ZP))`` (``band.zeropoint_ab``)."""
    return exptime_s * 10.0 ** (-0.4 * (np.asarray(mag) - band.zeropoint_ab))

__all__ = []


def _colour(band, n, rng):
    """``n`` colours (m_band - m_reference): ``mean + spread * N(0, 1)`` of ``band.colour_mag``."""
    mean, spread = band.colour_mag
    return mean + spread * rng.standard_normal(n)


def _surface_e(mu_mag_arcsec2, band, exptime_s, pixel_scale_arcsec):
    """Electrons per pixel of a surface brightness mu (AB mag/arcsec^2, reference-band)."""
    return float(_mag_to_e(mu_mag_arcsec2, band, exptime_s)) * pixel_scale_arcsec**2
