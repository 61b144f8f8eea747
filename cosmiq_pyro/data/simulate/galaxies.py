"""Galaxies: a library of intrinsic GalSim galaxy stamps, drawn once per process and
cached, and their placement on a scene.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import galsim
import numpy as np

from .filters import _colour, _mag_to_e

__all__ = ["LIBRARY_SCALE_ARCSEC", "GALAXY_LIBRARY_SIZE", "GALAXY_LIBRARY_SEED", "SERSIC_INDICES"]

#: GalSim needs an angular unit; stamps are drawn in pixels, so any scale gives the same arrays.
#: The ACS/WFC pixel (0.05"), at which the size-magnitude relation below is stated.
LIBRARY_SCALE_ARCSEC = 0.05


@dataclass(frozen=True)
class _GalaxyLibrary:
    stamps: tuple  # unit-flux, pixel-integrated intrinsic images, odd sizes
    log_re: np.ndarray  # ln half-light radius in pixels, sorted ascending


GALAXY_LIBRARY_SIZE = 240
GALAXY_LIBRARY_SEED = 20_250_601  # the library is part of the simulator, not of a frame
SERSIC_INDICES = (0.8, 1.0, 1.5, 2.5, 4.0)  # few distinct n: GalSim caches one table per n


@functools.lru_cache(maxsize=None)
def _galaxy_library():
    """Intrinsic (PSF-free, pixel-integrated) galaxy stamps drawn once with GalSim.

    Sersic profiles with n in `SERSIC_INDICES`, half-light radius log-uniform in
    0.8-25 px, axis ratio 0.2-1, random position angle and sub-pixel centre; one in five is
    a clumpy disk (exponential disk plus 2-5 Gaussian knots carrying 15-45 % of the light),
    like the irregular galaxies of deep fields.  Each is drawn 4x oversampled without pixel
    convolution and summed 4x4 (pixel integration), which avoids GalSim's huge FFTs for
    small cuspy profiles.
    """
    rng = np.random.default_rng(GALAXY_LIBRARY_SEED)
    over = 4
    entries = []
    for _ in range(GALAXY_LIBRARY_SIZE):
        re_px = math.exp(rng.uniform(math.log(0.8), math.log(25.0)))
        n = float(rng.choice(SERSIC_INDICES))
        clumpy = rng.random() < 0.2
        re_arcsec = re_px * LIBRARY_SCALE_ARCSEC
        shear = dict(q=rng.uniform(0.2, 1.0), beta=rng.uniform(0, 180) * galsim.degrees)
        if clumpy:
            n = 1.0
            knots_share = rng.uniform(0.15, 0.45)
            parts = [galsim.Sersic(n=1.0, half_light_radius=re_arcsec).shear(**shear)
                     .withFlux(1.0 - knots_share)]
            n_knots = int(rng.integers(2, 6))
            for w in rng.dirichlet(np.ones(n_knots)) * knots_share:
                sigma = rng.uniform(0.5, 1.5) * LIBRARY_SCALE_ARCSEC
                dx, dy = rng.normal(0.0, 0.7 * re_arcsec, 2)
                parts.append(galsim.Gaussian(sigma=sigma, flux=w).shift(dx, dy))
            profile = galsim.Add(parts)
        else:
            profile = galsim.Sersic(n=n, half_light_radius=re_arcsec).shear(**shear)
        half = int(min(64, math.ceil(re_px * (3.0 + n))))
        S = 2 * half + 1
        offset = rng.uniform(-0.5, 0.5, 2) * over
        fine = profile.drawImage(nx=S * over, ny=S * over, scale=LIBRARY_SCALE_ARCSEC / over,
                                 method="no_pixel", offset=tuple(offset)).array
        stamp = fine.reshape(S, over, S, over).sum(axis=(1, 3))
        stamp = np.clip(stamp, 0.0, None)
        entries.append((math.log(re_px), stamp / stamp.sum()))
    entries.sort(key=lambda e: e[0])
    return _GalaxyLibrary(stamps=tuple(e[1] for e in entries),
                          log_re=np.array([e[0] for e in entries]))


def _place_galaxies(scene, n, mags, filter, exptime_s, rng, xy=None, log_re=None, count=True):
    """Add ``n`` library galaxies of F606W magnitudes ``mags`` to the extended light.

    Size follows magnitude: ln r_e[px] = ln(6) - 0.23 (m - 24) + N(0, 0.35) on 0.05" pixels
    (bright galaxies are bigger; r_e ~ 0.3" at m = 24, a rough deep-field size-magnitude
    relation), shifted by ln(0.05" / scale) on the scene's pixels, unless ``log_re`` is given.  ``count=False`` places stamps that are not galaxies (star-forming
    clumps) and leaves them out of ``n_galaxies``.
    """
    if n == 0:
        return
    lib = _galaxy_library()
    ny, nx = scene.shape
    if xy is None:
        xy = rng.uniform((0, 0), (nx, ny), (n, 2))
    if log_re is None:
        log_re = math.log(6.0) - 0.23 * (mags - 24.0) + 0.35 * rng.standard_normal(n)
        log_re = log_re + math.log(LIBRARY_SCALE_ARCSEC / scene.pixel_scale_arcsec)
    flux = _mag_to_e(mags + _colour(filter, n, rng), filter, exptime_s)
    ext = scene.ext()
    if count:
        scene.galaxy_xy.append(np.asarray(xy, float).reshape(-1, 2))
    nearest = np.searchsorted(lib.log_re, log_re).clip(0, len(lib.stamps) - 1)
    picks = (nearest + rng.integers(-2, 3, n)).clip(0, len(lib.stamps) - 1)
    turns, flips = rng.integers(0, 4, n), rng.random(n) < 0.5
    for (x, y), f, k, turn, flip in zip(xy, flux, picks, turns, flips):
        stamp = np.rot90(lib.stamps[k], turn)
        if flip:
            stamp = stamp[:, ::-1]
        h = stamp.shape[0] // 2
        cx, cy = int(round(x)), int(round(y))
        y0, y1, x0, x1 = cy - h, cy + h + 1, cx - h, cx + h + 1
        sy0, sx0 = max(0, -y0), max(0, -x0)
        sy1, sx1 = stamp.shape[0] - max(0, y1 - ny), stamp.shape[1] - max(0, x1 - nx)
        if sy1 <= sy0 or sx1 <= sx0:
            continue
        ext[max(0, y0):min(ny, y1), max(0, x0):min(nx, x1)] += f * stamp[sy0:sy1, sx0:sx1]
