"""Simulated frames as FITS previews (`simulated_hdulist`): what ``cosmiq simulate --previews`` and
the demo write, readable by `fitsio.read_hst` and so by ``cosmiq predict``."""
from __future__ import annotations

import numpy as np
from astropy.io import fits

from .._version import __version__
from ..instruments import get_instrument

__all__ = ["simulated_hdulist"]


def simulated_hdulist(image, mask, ignore, meta: dict | None = None, instrument=None) -> fits.HDUList:
    """A simulated frame as FITS: SCI (electrons), CRMASK and IGNORE (uint8), meta in the header.

    `fitsio.read_hst` reads the SCI extension back (``BUNIT = 'ELECTRONS'``), so a preview can be
    fed to ``cosmiq predict``.  TELESCOP / INSTRUME / DETECTOR are the camera's spec's values
    (its ``[camera.match]``), so the reader recognises the camera as it would a real frame.

    Parameters
    ----------
    image : array_like (H, W)
        Electrons.
    mask, ignore : array_like of bool (H, W)
        CR truth and bad pixels.
    meta : dict, optional
        `simulate.SimulatedFrame.meta` (instrument, field, filter, exptime_s, seed, sky_e, ...).
    instrument : str, os.PathLike or Instrument, optional
        The simulated camera (default: ``meta["instrument"]``, else ACS-WFC).
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    for name, a in (("mask", mask), ("ignore", ignore)):
        if np.shape(a) != image.shape:
            raise ValueError(f"{name} has shape {np.shape(a)}, image has {image.shape}")
    meta = dict(meta or {})
    camera = get_instrument(instrument if instrument is not None else meta.get("instrument", "ACS-WFC"))
    primary = fits.PrimaryHDU()
    header = primary.header
    header["ORIGIN"] = ("cosmiq_pyro", "software that made this file")
    header["CQVERS"] = (__version__, "cosmiq_pyro version")
    header["SIMULATD"] = (True, "simulated by cosmiq_pyro.data.simulate")
    for key in ("TELESCOP", "INSTRUME", "DETECTOR"):
        accepted = getattr(camera.match, key.lower())
        if accepted:  # the spec's first accepted value
            header[key] = (accepted[0], f"simulated {camera.name} frame")
    header["CAMERA"] = (camera.name, "cosmiq_pyro instrument spec simulated")
    for key, meta_key, comment in (
            ("FILTER", "filter", "filter simulated"),
            ("FIELD", "field", "field type: EX, GC or GAL"),
            ("EXPTIME", "exptime_s", "exposure time [s]"),
            ("SKY_E", "sky_e", "sky level per pixel [electrons]"),
            ("RDNOISE", "read_noise_e", "read noise [electrons]"),
            ("CCDGAIN", "gain_e_per_adu", "gain [e-/ADU]"),
            ("NCRS", "n_crs", "cosmic rays hitting the frame"),
            ("CRRATEX", "cr_rate_multiplier", "factor on the real CR rate (1: real)"),
            ("SEEING", "seeing_fwhm_arcsec", "delivered PSF FWHM [arcsec]"),
            ("LABELS", "label_rule", "CRMASK rule: drizcr (AstroDrizzle) or sigma"),
            ("DEFECTS", "defects", "detector defects simulated"),
            ("SIMSEED", "seed", "simulator seed of this frame")):
        if meta.get(meta_key) is not None:
            value = meta[meta_key]
            header[key] = (value.item() if isinstance(value, np.generic) else value, comment)
    sci = fits.ImageHDU(image, name="SCI", ver=1)
    sci.header["BUNIT"] = ("ELECTRONS", "pixel unit")
    crmask = fits.ImageHDU(np.asarray(mask, dtype=np.uint8), name="CRMASK", ver=1)
    crmask.header["COMMENT"] = {
        "drizcr": "1 = CR pixel by AstroDrizzle's driz_cr rule (data.simulate.labels)",
        "sigma": f"1 = CR charge above {meta.get('mask_threshold_sigma', 1.0):g} sigma of the pixel noise",
    }.get(meta.get("label_rule"), "1 = pixel whose CR charge exceeds the simulator's mask threshold")
    bad = fits.ImageHDU(np.asarray(ignore, dtype=np.uint8), name="IGNORE", ver=1)
    bad.header["COMMENT"] = "1 = hot pixel, bad column, saturated or bleed trail"
    return fits.HDUList([primary, sci, crmask, bad])
