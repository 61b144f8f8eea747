"""Frames unlike the training data: simulated distribution shifts of ACS/WFC frames and two
real ground-based frames from pip packages, for measuring novelty scores
(`cosmiq_pyro.inference.novelty`; benchmarks/novelty_study.py, notebook 04).

Shifts of a `SimulatedFrame` (`shifted_frames`), each an image we pretend is in electrons:

* ``adu``: the image divided by its gain (2 e-/ADU), i.e. data in ADU read as electrons;
* ``seeing3``: the CR-free noiseless image blurred by a Gaussian so that the PSF's FWHM triples
  (a seeing-limited ground-based image), then the CR charge, Poisson and read noise and the
  ADC re-applied;
* ``readnoise5``: the noiseless image and CRs read out with five times the read noise;
* ``e_per_s``: the image divided by the exposure time (drizzled ``_drz`` products are in e-/s);
* ``skysub``: the image minus its sky level.

Real frames (`real_ground_frames`), in electrons: astroscrappy's Gemini GMOS-S long-slit cutout
(``gmos.fits``, reduced by DRAGONS and already in electrons: its VAR extension is SCI + 4.24^2, the
Poisson variance of electrons plus the read noise, so it is used as stored) and ccdproc's raw SAAO
1.0 m frame (``a8280271.fits``, ADU: the overscan BIASSEC's median subtracted, trimmed to TRIMSEC,
times its GAIN of 1.9 e-/ADU).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["SHIFTS", "psf_fwhm_px", "shifted_frames", "real_ground_frames"]

SHIFTS = ("adu", "seeing3", "readnoise5", "e_per_s", "skysub")
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def psf_fwhm_px(filter: str, instrument="ACS-WFC", fwhm_arcsec=None, beta=None) -> float:
    """FWHM (px) of the simulator's PSF for ``filter`` of ``instrument``, sampled at pixel
    centres (GalSim's half-maximum radius); about 1.7-1.8 px for ACS/WFC.  A Moffat (ground)
    PSF needs the frame's ``fwhm_arcsec`` and ``beta`` (its meta's ``seeing_fwhm_arcsec``,
    ``moffat_beta``)."""
    import galsim
    from ..data.simulate import resolve_instrument
    from ..data.simulate.optics import _psf_stamps, psf_key  # the simulator's cached PSF stamps

    inst = resolve_instrument(instrument)
    key = psf_key(inst, inst.simulation.filter(filter), fwhm_arcsec, beta)
    return float(galsim.Image(_psf_stamps(key)[1], scale=1.0).calculateFWHM())


def _read_out(expected_e, read_noise_e: float, rng, gain_e_per_adu: float) -> np.ndarray:
    """``g round((Poisson(expected) + N(0, read_noise^2)) / g)`` as float32 electrons."""
    charge = rng.poisson(np.maximum(expected_e, 0.0)) + rng.normal(0.0, read_noise_e, expected_e.shape)
    return (gain_e_per_adu * np.round(charge / gain_e_per_adu)).astype(np.float32)


def shifted_frames(frame, seed: int = 15) -> dict:
    """The shifts of one simulated frame, ``name -> (H, W) float32`` (see the module docstring).

    Parameters
    ----------
    frame : SimulatedFrame
        From `cosmiq_pyro.data.simulate.simulate_frame`.
    seed : int
        Seed of the new noise (combined with the frame's own seed).
    """
    rng = np.random.default_rng([int(frame.meta["seed"]), int(seed)])
    meta = frame.meta
    gain = float(meta["gain_e_per_adu"])
    read_noise = float(meta["read_noise_e"])
    fwhm = psf_fwhm_px(meta["filter"], meta.get("instrument", "ACS-WFC"),
                       meta.get("seeing_fwhm_arcsec"), meta.get("moffat_beta"))
    blur_sigma = fwhm * math.sqrt(3.0 ** 2 - 1.0) / _FWHM_PER_SIGMA  # Gaussian widths add in quadrature
    noiseless = frame.noiseless.astype(np.float64)
    return {
        "adu": (frame.image / gain).astype(np.float32),
        "seeing3": _read_out(gaussian_filter(noiseless, blur_sigma) + frame.cr_image, read_noise, rng, gain),
        "readnoise5": _read_out(noiseless + frame.cr_image, 5.0 * read_noise, rng, gain),
        "e_per_s": (frame.image / np.float32(meta["exptime_s"])).astype(np.float32),
        "skysub": (frame.image - np.float32(frame.sky_e)).astype(np.float32),
    }


def real_ground_frames() -> dict:
    """``{"gmos": ..., "saao": ...}``: the two real frames in electrons (float32); gmos as stored
    (until issue 22 it was multiplied by astroscrappy's gain 1.933 as if it were ADU).

    Raises
    ------
    ModuleNotFoundError
        astroscrappy or ccdproc (which ship the files) is not installed.
    FileNotFoundError
        A distribution without its test data.
    """
    import astroscrappy
    import ccdproc
    from astropy.io import fits
    gmos_path = Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits"
    saao_path = Path(ccdproc.__file__).parent / "tests" / "data" / "a8280271.fits"
    for path in (gmos_path, saao_path):
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} is missing from its distribution")
    with fits.open(gmos_path, memmap=False) as hdul:
        gmos = hdul["SCI"].data.astype(np.float64)  # electrons already (VAR = SCI + read noise^2)
    with fits.open(saao_path, memmap=False) as hdul:
        raw = hdul[0].data.astype(np.float64)  # uint16 stored as int16 + BZERO 32768, ADU
        header = hdul[0].header
    bias = _section(header["BIASSEC"])
    trim = _section(header["TRIMSEC"])
    saao = (raw[trim] - np.median(raw[bias])) * float(header["GAIN"])
    return {"gmos": gmos.astype(np.float32), "saao": saao.astype(np.float32)}


def _section(text: str) -> tuple[slice, slice]:
    """A FITS section ``"[x0:x1, y0:y1]"`` (1-based, inclusive, x = column) as numpy slices."""
    x, y = (part.split(":") for part in text.strip().strip("[]").split(","))
    return slice(int(y[0]) - 1, int(y[1])), slice(int(x[0]) - 1, int(x[1]))
