"""The PSF of a camera (its spec's ``[simulation.psf]``), rendered once per process and
cached, and the FFT rendering of a scene through it.

* ``"hst"``: GalSim's `OpticalPSF` of the HST pupil at the filter's pivot wavelength, with the
  residual aberrations and focus variation of ACS IHB-C14 5.6.6 (split evenly over astigmatism,
  coma and spherical), convolved with a Gaussian of the charge diffusion (ACS IHB 5.6.1,
  `PSFSim.diffusion_sigma_at`) and the pointing jitter added in quadrature;
* ``"moffat"``: a ground-based seeing PSF, a Moffat profile of the frame's delivered FWHM and
  beta (drawn per frame, `moffat_draw`); the delivered FWHM already contains charge diffusion
  and the pixel, so the profile is sampled at pixel centres.

A PSF is named by a hashable key (`psf_key`), so every frame of the same camera, filter and
seeing shares the cached stamps.
"""
from __future__ import annotations

import functools
import math

import galsim
import numpy as np
import scipy.fft

__all__ = ["PSF_STAMP", "PSF_PHASES", "SEEING_STEP_ARCSEC", "BETA_STEP", "psf_key", "moffat_draw"]

PSF_STAMP = 65  # odd, so a profile centred on the stamp is centred on a pixel
PSF_PHASES = 4  # sub-pixel phases per axis for point sources (max error 1/8 pixel)
SEEING_STEP_ARCSEC = 0.01  # delivered FWHMs are drawn on this grid (stamps are cached per value)
BETA_STEP = 0.1  # and Moffat betas on this one


def psf_key(instrument, band, fwhm_arcsec=None, beta=None):
    """The hashable description of the PSF of ``band`` (a `FilterSim`) on ``instrument``.

    ``fwhm_arcsec`` and ``beta``: the frame's seeing, for a Moffat PSF (`moffat_draw`).
    """
    psf, scale = instrument.simulation.psf, instrument.detector.pixel_scale_arcsec
    if psf.model == "hst":
        return ("hst", band.pivot_nm, psf.diffusion_sigma_at(band.pivot_nm), scale,
                psf.mirror_diameter_m, psf.obscuration, psf.struts, psf.strut_thickness,
                psf.aberration_rms_waves_at_550nm, psf.defocus_rms_waves_at_550nm,
                psf.jitter_sigma_arcsec)
    if fwhm_arcsec is None or beta is None:
        raise ValueError("a Moffat PSF needs the frame's fwhm_arcsec and beta (moffat_draw)")
    return ("moffat", float(fwhm_arcsec), float(beta), scale)


def moffat_draw(psf, band, rng):
    r"""One frame's delivered FWHM (arcsec) and Moffat beta.

    .. math:: \ln \mathrm{FWHM} \sim \mathcal{N}(\ln \mathrm{FWHM}_{med}, s^2),
              \quad \beta \sim U(\beta_{lo}, \beta_{hi})

    with the median of ``band.seeing_fwhm_arcsec`` and s = ``psf.seeing_scatter_ln``; the FWHM
    clipped to ``psf.seeing_fwhm_range_arcsec`` and rounded to `SEEING_STEP_ARCSEC`, beta to
    `BETA_STEP`.
    """
    fwhm = band.seeing_fwhm_arcsec * math.exp(psf.seeing_scatter_ln * rng.standard_normal())
    fwhm = min(max(fwhm, psf.seeing_fwhm_range_arcsec[0]), psf.seeing_fwhm_range_arcsec[1])
    beta = rng.uniform(*psf.moffat_beta)
    return (round(fwhm / SEEING_STEP_ARCSEC) * SEEING_STEP_ARCSEC,
            round(beta / BETA_STEP) * BETA_STEP)


def _profile(key):
    """The GalSim profile of a `psf_key` and its pixel scale; whether stamps are pixel-integrated."""
    if key[0] == "moffat":
        _, fwhm, beta, scale = key
        return galsim.Moffat(beta=beta, fwhm=fwhm), scale, False
    (_, pivot_nm, diffusion_px, scale, diameter, obscuration, struts, strut_thickness,
     aberration, defocus, jitter) = key
    waves = 550.0 / pivot_nm  # aberrations are quoted in waves at 5500 A
    each = aberration / math.sqrt(5.0) * waves
    optics = galsim.OpticalPSF(
        lam=pivot_nm, diam=diameter, obscuration=obscuration, nstruts=struts,
        strut_thick=strut_thickness, strut_angle=45.0 * galsim.degrees,
        defocus=defocus * waves, astig1=each, astig2=-each, coma1=each,
        coma2=-each, spher=each, scale_unit=galsim.arcsec,
    )
    blur_arcsec = math.hypot(diffusion_px * scale, jitter)
    return galsim.Convolve(optics, galsim.Gaussian(sigma=blur_arcsec)), scale, True


@functools.lru_cache(maxsize=64)
def _psf_stamps(key):
    """Pixel-integrated PSF at PSF_PHASES^2 sub-pixel offsets, plus the unintegrated PSF.

    Returns
    -------
    phased : ndarray, shape (P, P, S, S)
        ``phased[jy, jx]`` is the PSF of a point source offset by ((jx+0.5)/P - 0.5,
        (jy+0.5)/P - 0.5) pixels from the stamp centre, integrated over pixels (an HST PSF;
        a delivered seeing PSF is sampled at pixel centres).
    sampled : ndarray, shape (S, S)
        The PSF sampled at pixel centres, for convolving images that are already
        pixel-integrated (galaxies).
    """
    psf, scale, integrate = _profile(key)
    method = "auto" if integrate else "no_pixel"
    P, S = PSF_PHASES, PSF_STAMP
    phased = np.empty((P, P, S, S))
    for jy in range(P):
        for jx in range(P):
            offset = ((jx + 0.5) / P - 0.5, (jy + 0.5) / P - 0.5)
            phased[jy, jx] = psf.drawImage(nx=S, ny=S, scale=scale, offset=offset,
                                           method=method).array
    sampled = psf.drawImage(nx=S, ny=S, scale=scale, method="no_pixel").array
    return phased, sampled


@functools.lru_cache(maxsize=3)
def _psf_transforms(key, shape):
    """FFTs of the PSF stamps embedded (centre at [0, 0]) in a grid of ``shape``.

    Returns ``(phased_hat (P, P, Ny, Nx//2+1), sampled_hat (Ny, Nx//2+1))``, complex64.
    """
    phased, sampled = _psf_stamps(key)
    c = PSF_STAMP // 2

    def embed(stamp):
        grid = np.zeros(shape)
        grid[:PSF_STAMP, :PSF_STAMP] = stamp
        grid = np.roll(grid, (-c, -c), axis=(0, 1))
        return scipy.fft.rfft2(grid).astype(np.complex64)

    phased_hat = np.stack([np.stack([embed(s) for s in row]) for row in phased])
    return phased_hat, embed(sampled)


def _render(scene, key):
    """Convolve the scene with the PSF ``key`` (`psf_key`); returns expected electrons on the
    padded grid.

    Point sources: for each sub-pixel phase group, a delta image (flux at the nearest
    pixel), Fourier-multiplied by the PSF drawn at that phase.  Extended light (already
    pixel-integrated): Fourier-multiplied by the pixel-sampled PSF.  One inverse FFT.
    """
    phased_hat, sampled_hat = _psf_transforms(key, scene.shape)
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
