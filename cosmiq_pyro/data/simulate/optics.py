"""HST optics: per-filter GalSim PSFs (rendered once per process and cached) and the FFT
rendering of a scene through them.

References (keys as in `cosmiq_pyro.data.simulate`): IHB-C14 5.6.6 (residual aberrations and
focus variations), IHB 5.6.1 via `FilterSpec.diffusion_sigma_px` (charge diffusion).
"""
from __future__ import annotations

import functools
import math

import galsim
import numpy as np
import scipy.fft

from .detector import PIXEL_SCALE_ARCSEC
from .filters import FILTERS

__all__ = ["HST_DIAMETER_M", "HST_OBSCURATION", "HST_STRUT_THICKNESS",
           "ABERRATION_RMS_WAVES_AT_550NM", "DEFOCUS_RMS_WAVES_AT_550NM", "JITTER_SIGMA_ARCSEC",
           "PSF_STAMP", "PSF_PHASES"]

HST_DIAMETER_M = 2.4  # HST primary mirror
HST_OBSCURATION = 0.33  # secondary-mirror linear obscuration of the HST pupil
HST_STRUT_THICKNESS = 0.02  # spider vanes, fraction of the pupil diameter (approximate)
# IHB-C14 5.6.6: residual aberrations 1/20 wave rms at 5500 A (excluding defocus); we split
# them evenly over astigmatism, coma and spherical, and add the 1/18 wave rms of focus
# variation it quotes.
ABERRATION_RMS_WAVES_AT_550NM = 0.05
DEFOCUS_RMS_WAVES_AT_550NM = 1.0 / 18.0
JITTER_SIGMA_ARCSEC = 0.005  # pointing jitter of a few mas rms (assumed 5 mas)
PSF_STAMP = 65  # odd, so a profile centred on the stamp is centred on a pixel
PSF_PHASES = 4  # sub-pixel phases per axis for point sources (max error 1/8 pixel)


@functools.lru_cache(maxsize=None)
def _psf_stamps(filter):
    """Pixel-integrated PSF at PSF_PHASES^2 sub-pixel offsets, plus the unintegrated PSF.

    Returns
    -------
    phased : ndarray, shape (P, P, S, S)
        ``phased[jy, jx]`` is the PSF of a point source offset by ((jx+0.5)/P - 0.5,
        (jy+0.5)/P - 0.5) pixels from the stamp centre, integrated over pixels.
    sampled : ndarray, shape (S, S)
        The PSF sampled at pixel centres, for convolving images that are already
        pixel-integrated (galaxies).
    """
    spec = FILTERS[filter]
    waves = 550.0 / spec.pivot_nm  # aberrations are quoted in waves at 5500 A
    each = ABERRATION_RMS_WAVES_AT_550NM / math.sqrt(5.0) * waves
    optics = galsim.OpticalPSF(
        lam=spec.pivot_nm, diam=HST_DIAMETER_M, obscuration=HST_OBSCURATION, nstruts=4,
        strut_thick=HST_STRUT_THICKNESS, strut_angle=45.0 * galsim.degrees,
        defocus=DEFOCUS_RMS_WAVES_AT_550NM * waves, astig1=each, astig2=-each, coma1=each,
        coma2=-each, spher=each, scale_unit=galsim.arcsec,
    )
    blur_arcsec = math.hypot(spec.diffusion_sigma_px * PIXEL_SCALE_ARCSEC, JITTER_SIGMA_ARCSEC)
    psf = galsim.Convolve(optics, galsim.Gaussian(sigma=blur_arcsec))
    P, S = PSF_PHASES, PSF_STAMP
    phased = np.empty((P, P, S, S))
    for jy in range(P):
        for jx in range(P):
            offset = ((jx + 0.5) / P - 0.5, (jy + 0.5) / P - 0.5)
            phased[jy, jx] = psf.drawImage(nx=S, ny=S, scale=PIXEL_SCALE_ARCSEC,
                                           offset=offset).array
    sampled = psf.drawImage(nx=S, ny=S, scale=PIXEL_SCALE_ARCSEC, method="no_pixel").array
    return phased, sampled


@functools.lru_cache(maxsize=3)
def _psf_transforms(filter, shape):
    """FFTs of the PSF stamps embedded (centre at [0, 0]) in a grid of ``shape``.

    Returns ``(phased_hat (P, P, Ny, Nx//2+1), sampled_hat (Ny, Nx//2+1))``, complex64.
    """
    phased, sampled = _psf_stamps(filter)
    c = PSF_STAMP // 2

    def embed(stamp):
        grid = np.zeros(shape)
        grid[:PSF_STAMP, :PSF_STAMP] = stamp
        grid = np.roll(grid, (-c, -c), axis=(0, 1))
        return scipy.fft.rfft2(grid).astype(np.complex64)

    phased_hat = np.stack([np.stack([embed(s) for s in row]) for row in phased])
    return phased_hat, embed(sampled)


def _render(scene, filter):
    """Convolve the scene with the filter's PSF; returns expected electrons on the padded grid.

    Point sources: for each sub-pixel phase group, a delta image (flux at the nearest
    pixel), Fourier-multiplied by the PSF drawn at that phase.  Extended light (already
    pixel-integrated): Fourier-multiplied by the pixel-sampled PSF.  One inverse FFT.
    """
    phased_hat, sampled_hat = _psf_transforms(filter, scene.shape)
    ny, nx = scene.shape
    total = np.zeros((ny, nx // 2 + 1), np.complex128)
    used = False
    if scene.star_xy:
        xy = np.concatenate(scene.star_xy)
        flux = np.concatenate(scene.star_e)
        ix, iy = np.floor(xy[:, 0] + 0.5), np.floor(xy[:, 1] + 0.5)
        keep = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        P = PSF_PHASES
        jx = np.floor((xy[:, 0] - ix + 0.5) * P).astype(int).clip(0, P - 1)
        jy = np.floor((xy[:, 1] - iy + 0.5) * P).astype(int).clip(0, P - 1)
        flat = (iy * nx + ix).astype(np.int64)
        group = jy * P + jx
        for g in np.unique(group[keep]):
            sel = keep & (group == g)
            delta = np.bincount(flat[sel], weights=flux[sel], minlength=ny * nx).reshape(ny, nx)
            total += scipy.fft.rfft2(delta) * phased_hat[g // P, g % P]
            used = True
    if scene.extended is not None:
        total += scipy.fft.rfft2(scene.extended) * sampled_hat
        used = True
    if not used:
        return np.zeros(scene.shape)
    return np.clip(scipy.fft.irfft2(total, s=scene.shape), 0.0, None)
