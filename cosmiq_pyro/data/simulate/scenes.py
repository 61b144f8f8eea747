"""Source fields on the padded grid, before the PSF: sparse extragalactic (EX), crowded
globular cluster (GC) and resolved nearby galaxy (GAL).

Densities and sizes are in pixels of a 256 x 256 frame where they describe crowding (GC stars,
GAL clusters), in arcsec where they describe the sky (EX galaxies per arcmin^2, surface
brightness), so the same scene on a camera of coarser pixels covers more sky.  ``filter``
arguments are `cosmiq_pyro.instruments.simulation.FilterSim` objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field as dataclass_field

import galsim
import numpy as np

from ...instruments.simulation import SCENES as FIELDS
from .filters import _colour, _mag_to_e, _surface_e
from .galaxies import LIBRARY_SCALE_ARCSEC, _place_galaxies

__all__ = []


@dataclass
class _Scene:
    """Sources on the padded grid (pad = PSF_STAMP // 2 on every side)."""

    shape: tuple  # (Ny, Nx) of the padded grid
    pad: int  # frame pixels are [pad, pad + size) on both axes
    size: int
    pixel_scale_arcsec: float
    star_xy: list = dataclass_field(default_factory=list)  # arrays (n, 2): x, y (padded px)
    star_e: list = dataclass_field(default_factory=list)  # arrays (n,): electrons
    extended: np.ndarray | None = None  # (Ny, Nx) pixel-integrated intrinsic light, e-
    galaxy_xy: list = dataclass_field(default_factory=list)  # arrays (n, 2) of stamp centres
    n_hosts: int = 0  # resolved host galaxies (GAL fields)

    def add_stars(self, xy, electrons):
        self.star_xy.append(np.asarray(xy, float).reshape(-1, 2))
        self.star_e.append(np.asarray(electrons, float).ravel())

    def ext(self):
        if self.extended is None:
            self.extended = np.zeros(self.shape)
        return self.extended


def _power_law_mags(n, m_bright, m_faint, slope, rng):
    """Magnitudes with dN/dm proportional to 10**(slope m) on [m_bright, m_faint]."""
    lo, hi = 10.0 ** (slope * m_bright), 10.0 ** (slope * m_faint)
    return np.log10(lo + rng.random(n) * (hi - lo)) / slope


def _area_factor(shape):
    """Padded-grid area in units of a 256 x 256 frame (densities are quoted per 256^2)."""
    return shape[0] * shape[1] / 256.0**2


def _inside(xy, pad, size):
    """Which padded-grid positions ``xy`` (n, 2) fall on the ``size`` x ``size`` frame (bool (n,))."""
    lo, hi = pad - 0.5, pad + size - 0.5
    return (xy[:, 0] >= lo) & (xy[:, 0] < hi) & (xy[:, 1] >= lo) & (xy[:, 1] < hi)


def _count_inside(xy, pad, size):
    """How many padded-grid positions ``xy`` (n, 2) fall on the ``size`` x ``size`` frame."""
    return int(_inside(xy, pad, size).sum())


def _field_galaxies(scene, density_per_256, filter, exptime_s, rng, m_range=(19.0, 28.5)):
    """Background galaxies: Poisson count, number counts dN/dm ~ 10**(0.3 m)."""
    n = rng.poisson(density_per_256 * _area_factor(scene.shape))
    mags = _power_law_mags(n, *m_range, 0.3, rng)
    xy = rng.uniform((0, 0), (scene.shape[1], scene.shape[0]), (n, 2))
    _place_galaxies(scene, n, mags, filter, exptime_s, rng, xy=xy)


def _field_stars(scene, mean_per_256, filter, exptime_s, rng, m_range=(18.0, 27.0)):
    """Foreground Galactic stars: Poisson count, flat in magnitude."""
    n = rng.poisson(mean_per_256 * _area_factor(scene.shape))
    xy = rng.uniform((0, 0), (scene.shape[1], scene.shape[0]), (n, 2))
    mags = rng.uniform(*m_range, n) + _colour(filter, n, rng)
    scene.add_stars(xy, _mag_to_e(mags, filter, exptime_s))


def _scene_ex(scene, filter, exptime_s, rng):
    """Sparse extragalactic field: 300-900 galaxies per arcmin^2 to m = 28.5, ~2 stars.

    A 256^2 ACS/WFC frame is 12.8" on a side (0.0455 arcmin^2), so 14-41 galaxies on average;
    the Hubble Ultra Deep Field holds ~10^4 galaxies in 11 arcmin^2.
    """
    density = rng.uniform(300.0, 900.0) * (256 * scene.pixel_scale_arcsec / 60.0) ** 2
    _field_galaxies(scene, density, filter, exptime_s, rng)
    _field_stars(scene, 2.0, filter, exptime_s, rng)


def _sample_density(weight, n, rng):
    """``n`` positions (x, y) on the grid drawn with probability proportional to ``weight``
    (inverse-CDF sampling of the flattened map, uniform within the chosen pixel)."""
    cdf = np.cumsum(weight, axis=None)
    flat = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right").clip(0, cdf.size - 1)
    y, x = np.divmod(flat, weight.shape[1])
    return np.column_stack([x, y]) + rng.uniform(-0.5, 0.5, (n, 2))


def _scene_gc(scene, filter, exptime_s, rng):
    """Crowded stellar field: part of a globular cluster.

    2000-6000 stars per 256^2 of frame on average, spatially following a Plummer profile
    Sigma ~ (1 + r^2/a^2)^-2 with core a = 80-400 px centred somewhere within a frame width,
    magnitudes from a power-law luminosity function dN/dm ~ 10**(alpha m), alpha 0.2-0.35,
    from the giant branch (m = 16.5-18.5 in F606W) to m = 28.5, plus the unresolved light of
    the fainter stars (a faint glow: 22-25 mag/arcsec^2 at the profile's peak; most of a
    cluster's light is in its resolved stars and their PSF wings).
    """
    ny, nx = scene.shape
    pad = scene.pad
    a = rng.uniform(80.0, 400.0)
    cx, cy = rng.uniform(-0.5, 1.5, 2) * (nx, ny)
    yy, xx = np.ogrid[0:ny, 0:nx]
    profile = 1.0 / (1.0 + ((xx - cx) ** 2 + (yy - cy) ** 2) / a**2)
    profile *= profile
    frame = profile[pad:pad + scene.size, pad:pad + scene.size]
    in_frame = rng.uniform(2000.0, 6000.0) * frame.size / 256.0**2
    n = rng.poisson(in_frame * profile.sum() / frame.sum())
    xy = _sample_density(profile, n, rng)
    mags = _power_law_mags(n, rng.uniform(16.5, 18.5), 28.5, rng.uniform(0.2, 0.35), rng)
    scene.add_stars(xy, _mag_to_e(mags + _colour(filter, n, rng), filter, exptime_s))
    mu_peak = rng.uniform(22.0, 25.0)
    scene.ext()[:] += profile / profile.max() * _surface_e(mu_peak, filter, exptime_s,
                                                           scene.pixel_scale_arcsec)
    _field_galaxies(scene, 3.0, filter, exptime_s, rng)


def _scene_gal(scene, filter, exptime_s, rng):
    """Part of a resolved nearby galaxy.

    A bright Sersic body (n in 1-4, r_e 3-30", drawn with GalSim) whose surface brightness at
    the frame centre is 18-22.5 mag/arcsec^2 (bulges to outer disks); disks (n <= 2.5) get
    2-4 flocculent logarithmic spiral arms and dust lanes along the arms' inner edges,
    spheroids a straight dust lane; patchy dust everywhere.  Star-forming clumps and resolved
    bright stars are scattered following the (arm-weighted) light: 30-150 clusters (compact
    stamps or point sources, m 20-26, dimmed by the local dust) and 300-1500 stars
    (m 22-28.5).
    """
    ny, nx = scene.shape
    n_sersic = float(rng.choice((1.0, 1.5, 2.5, 4.0)))
    re_px = rng.uniform(60.0, 600.0)
    q, pa = rng.uniform(0.3, 1.0), rng.uniform(0.0, np.pi)
    centre = rng.uniform(-0.6, 0.6, 2) * (nx, ny) * rng.uniform(0.2, 2.0)
    # drawn in pixels: GalSim's arcsec unit cancels (LIBRARY_SCALE_ARCSEC)
    body = galsim.Sersic(n=n_sersic, half_light_radius=re_px * LIBRARY_SCALE_ARCSEC)
    body = body.shear(q=q, beta=pa * galsim.radians)
    light = body.drawImage(nx=nx, ny=ny, scale=LIBRARY_SCALE_ARCSEC, method="no_pixel",
                           offset=tuple(centre)).array.astype(float)
    # deprojected polar coordinates around the body's centre
    yy, xx = np.ogrid[0:ny, 0:nx]
    dx = (xx - ((nx - 1) / 2 + centre[0])).astype(np.float32)  # float32: 2-3x faster maps
    dy = (yy - ((ny - 1) / 2 + centre[1])).astype(np.float32)
    u = dx * math.cos(pa) + dy * math.sin(pa)  # (ny, nx) by broadcasting
    v = (-dx * math.sin(pa) + dy * math.cos(pa)) / q
    tau = rng.uniform(0.0, 0.6) * _smooth_noise(scene.shape, rng.uniform(6.0, 20.0), rng)
    arms = 1.0
    if n_sersic <= 2.5:
        m_arms = int(rng.integers(2, 5))
        pitch = math.radians(rng.uniform(12.0, 30.0))
        r = np.hypot(u, v) + 1.0
        phase = m_arms * (np.arctan2(v, u) - np.log(r / re_px) / math.tan(pitch))
        phase += rng.uniform(0, 2 * np.pi)
        crest = 0.5 * (1.0 + np.cos(phase))  # 1 on an arm's crest, 0 between arms
        crest2 = crest * crest
        contrast = rng.uniform(0.3, 0.8)
        flocculence = 0.4 + 0.75 * _smooth_noise(scene.shape, rng.uniform(8.0, 25.0), rng)
        arms = ((1.0 - contrast) + 3.0 * contrast * crest2 * crest2) * flocculence
        # dust along the arms' inner edges: a narrow crest shifted by 0.6 rad of phase
        lane = 0.5 * (1.0 + np.cos(phase - 0.6))
        lane2 = lane * lane
        lane8 = lane2 * lane2
        lane8 *= lane8
        tau += rng.uniform(0.3, 1.5) * lane8 * lane2
    else:
        width = rng.uniform(5.0, 25.0)
        tilt = rng.uniform(-0.3, 0.3)
        tau += rng.uniform(0.5, 2.0) * np.exp(-0.5 * ((v * q - tilt * u) / width) ** 2)
    light *= arms * np.exp(-tau)
    centre_pix = light[ny // 2, nx // 2]
    target = _surface_e(rng.uniform(18.0, 22.5), filter, exptime_s, scene.pixel_scale_arcsec)
    light *= target / max(centre_pix, 1e-12 * light.max(), 1e-300)
    scene.ext()[:] += light
    weight = light * arms + 1e-6 * light.max()
    n_clusters = int(rng.integers(30, 151) * _area_factor(scene.shape))
    xy = _sample_density(weight, n_clusters, rng)
    mags = rng.uniform(20.0, 26.0, n_clusters)
    compact = rng.random(n_clusters) < 0.5
    iy = np.rint(xy[:, 1]).astype(int).clip(0, ny - 1)
    ix = np.rint(xy[:, 0]).astype(int).clip(0, nx - 1)
    mags = mags + 2.5 / math.log(10.0) * tau[iy, ix]  # dimmed by the dust in front
    n_compact = int(compact.sum())
    _place_galaxies(scene, n_compact, mags[compact], filter, exptime_s, rng,
                    xy=xy[compact], count=False,
                    log_re=rng.uniform(math.log(0.8), math.log(2.5), n_compact))
    n_point = n_clusters - n_compact
    point_mags = mags[~compact] + _colour(filter, n_point, rng)
    scene.add_stars(xy[~compact], _mag_to_e(point_mags, filter, exptime_s))
    n_stars = int(rng.integers(300, 1501) * _area_factor(scene.shape))
    xy = _sample_density(light, n_stars, rng)
    mags = _power_law_mags(n_stars, 22.0, 28.5, 0.3, rng)
    scene.add_stars(xy, _mag_to_e(mags + _colour(filter, n_stars, rng), filter, exptime_s))
    _field_galaxies(scene, 3.0, filter, exptime_s, rng)
    scene.n_hosts += 1


def _smooth_noise(shape, scale_px, rng):
    """Non-negative random field smoothed on ``scale_px``: |N(0, 1)| on a coarse grid,
    bilinearly interpolated (as two small matrix products)."""
    coarse = np.abs(rng.standard_normal((int(shape[0] / scale_px) + 2,
                                         int(shape[1] / scale_px) + 2)))

    def interpolation_matrix(n_fine, n_coarse):  # (n_fine, n_coarse), rows sum to 1
        pos = np.linspace(0.0, n_coarse - 1.0, n_fine)
        lo = np.minimum(pos.astype(int), n_coarse - 2)
        frac = pos - lo
        m = np.zeros((n_fine, n_coarse), np.float32)
        m[np.arange(n_fine), lo] = 1.0 - frac
        m[np.arange(n_fine), lo + 1] = frac
        return m

    wy = interpolation_matrix(shape[0], coarse.shape[0])
    wx = interpolation_matrix(shape[1], coarse.shape[1])
    return wy @ coarse.astype(np.float32) @ wx.T  # (ny, nx) float32
