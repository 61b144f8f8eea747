"""Read HST-style CCD frames from FITS into electrons, with an ``ignore`` mask from DQ flags.

`read_hst` returns one `HSTImage` per science extension (both WFC chips of an ACS
``_flc``/``_flt`` file, every CCD of a DECam file, or the primary image of a simple FITS file):
the pixels in electrons as float32, a boolean ``ignore`` mask (DQ bits in ``dq_flags``, plus any
non-finite pixel), the extension header, the primary header and the celestial WCS.

The camera is recognised from the primary header (`cosmiq_pyro.instruments.instrument_for_header`)
unless ``instrument=`` names one; its spec says which extensions hold pixels, which DQ bits are
bad, the unit when BUNIT is missing, where the gain and exposure time are, and the default gain.
Each setting is taken from the keyword argument (the command line), else the header, else the
spec.  A camera without spec is read as before: every SCI extension (else the primary / first
image), ACS/WFC's DQ bits, BUNIT (else electrons, with a warning), CCDGAIN / ATODGAIN / GAIN.

`write_hdulist_atomic` (`cosmiq_pyro.io.fitswrite`) writes an `~astropy.io.fits.HDUList` to a
temporary file beside the target and renames it into place, so a crash never leaves a half-written
product.  The unit conversion is `cosmiq_pyro.io.fitsunits`.

DQ flags: which bits mark a pixel as bad is a fact of the camera, in its spec
(``[reader] dq_ignore_bits``; the ACS/WFC table with the meaning of every bit is in
``cosmiq_pyro/instruments/specs/ACS-WFC.toml``).  `DEFAULT_DQ_FLAGS` is ACS/WFC's: lost, filled,
defective, saturated, trapped, hot and unstable pixels, but not warm pixels (64) nor reference-
file flags (512), and never the cosmic-ray bits 4096 and 8192 (`CR_DQ_FLAGS`), which come from
earlier CR rejection and would hide exactly the pixels a cosmic-ray detector is asked about.
"""
from __future__ import annotations

import gzip
import os
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning

from ..instruments import get_instrument, instrument_for_header
from .fitsunits import GAIN_KEYWORDS, check_optional_positive, check_unit_name, electrons_per_unit, header_number
from ..utils.checks import MAX_INT64, check_int
from ..utils.deprecation import moved_names

__all__ = [
    "DEFAULT_DQ_FLAGS",
    "CR_DQ_FLAGS",
    "MAX_ABS_ELECTRONS",
    "HSTImage",
    "read_hst",
]

#: Moved in 0.2.0: ``write_hdulist_atomic`` lives in `cosmiq_pyro.io.fitswrite`.
__getattr__ = moved_names(__name__, {"write_hdulist_atomic": ("cosmiq_pyro.io.fitswrite", "write_hdulist_atomic")})

_ACS_READER = get_instrument("ACS-WFC").reader
#: DQ bits treated as bad pixels by default: ACS/WFC's (its spec's ``dq_ignore_bits``, = 3519).
DEFAULT_DQ_FLAGS = _ACS_READER.dq_ignore_bits

#: DQ bits set by earlier cosmic-ray rejection (AstroDrizzle 4096, CALACS 8192; ``dq_cr_bits``).
CR_DQ_FLAGS = _ACS_READER.dq_cr_bits

#: Pixels beyond this magnitude (electrons) are fill values (1e30, -1e31 ...), not charge: a CCD
#: pixel holds ~1e5 e- (ACS/WFC full well 84 700 e-), a deep co-added frame ~1e7.  They are
#: ignored like NaN pixels, with a warning.
MAX_ABS_ELECTRONS = 1e9


@dataclass
class HSTImage:
    """One science extension of a FITS file, in electrons.

    Attributes
    ----------
    image : numpy.ndarray
        ``(H, W)`` float32 pixel values in electrons.  Non-finite input pixels and fill values
        are replaced by the median of the other pixels (and flagged in ``ignore``).
    ignore : numpy.ndarray
        ``(H, W)`` bool, True where ``DQ & dq_flags != 0``, the input pixel was NaN/inf, or its
        magnitude exceeds `MAX_ABS_ELECTRONS` (a fill value).
    header : astropy.io.fits.Header
        Copy of the science extension's header.
    primary_header : astropy.io.fits.Header
        Copy of the file's primary header (holds EXPTIME, CCDGAIN for HST).
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the extension (with SIP / lookup-table distortions when present),
        or None when the header has none.
    extname, extver : str, int
        Which extension this is (``"PRIMARY"``, 1 for a simple file).
    bunit : str or None
        BUNIT as found in the header (None when absent).
    electrons_per_unit : float
        Factor that converted the stored pixels to electrons: ``image = data * factor``.
        Divide by it to write results back in the file's own units.
    exptime_s : float or None
        Exposure time used or found (seconds), None if the header has none.
    path : str
        The file read.
    bunit_used : str or None
        The unit the pixels were read as: the ``bunit=`` override, else BUNIT; None when
        neither exists (read as electrons, with a warning).
    gain_e_per_adu : float or None
        The gain applied (e-/ADU), None when the unit is not a count unit.
    instrument : str or None
        Name of the camera spec applied (`cosmiq_pyro.instruments`), None for a camera without
        spec.
    gain_from_spec : bool
        True when the gain is the spec's default (neither the argument nor the header gave one).
    """

    image: np.ndarray
    ignore: np.ndarray
    header: fits.Header
    primary_header: fits.Header
    wcs: WCS | None
    extname: str
    extver: int
    bunit: str | None
    electrons_per_unit: float
    exptime_s: float | None
    path: str = field(repr=False, default="")
    bunit_used: str | None = None
    gain_e_per_adu: float | None = None
    instrument: str | None = None
    gain_from_spec: bool = False


def read_hst(path, ext=None, dq_flags=None, *, bunit=None, gain_e_per_adu=None,
             exptime_s=None, instrument=None):
    """Read every science extension of an HST-style FITS file, in electrons.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file (``_flc``/``_flt``/``_drc`` or any single-image FITS).
    ext : int, str or (str, int), optional
        Read only this extension (``1``, ``"SCI"``, ``("SCI", 2)``, ``"S29"``).  By default
        every science extension of the camera's spec is read (``SCI`` for HST, every CCD for
        DECam), or for a camera without spec every ``SCI`` extension; a file with none yields
        its primary image, or else its first image extension.
    dq_flags : int, optional
        DQ bits that mark a pixel as bad; 0 uses no DQ.  Default: the spec's
        ``dq_ignore_bits``, or `DEFAULT_DQ_FLAGS` (ACS/WFC's) for a camera without spec.  The
        DQ extension (the spec's ``dq_extname``, else ``DQ``) is the one whose EXTVER matches
        the science extension.
    bunit : str, optional
        Unit to assume instead of the header's BUNIT (which in turn wins over the spec's).
    gain_e_per_adu : float, optional
        Gain for count units, overriding the header's gain keywords (the spec's, else CCDGAIN /
        ATODGAIN / GAIN), which override the spec's default gain (used with a warning).
    exptime_s : float, optional
        Exposure time for rate units, overriding EXPTIME (the spec's ``exptime_keyword``).
    instrument : str, os.PathLike or Instrument, optional
        The camera's spec (a shipped name such as ``"DECam"`` or a ``.toml`` path) instead of
        the one recognised from the header.

    Returns
    -------
    list of HSTImage
        One entry per science extension, in file order.

    Notes
    -----
    Units are converted to electrons (`cosmiq_pyro.io.fitsunits`, where the formula is) by a
    factor 1 (ELECTRONS), :math:`t_\\mathrm{exp}` (ELECTRONS/S), :math:`g` (COUNTS, ADU, DN) or
    :math:`g\\, t_\\mathrm{exp}` (COUNTS/S), with :math:`t_\\mathrm{exp}` from EXPTIME and
    :math:`g` (e-/ADU) from CCDGAIN, ATODGAIN or GAIN (science header first, then primary).
    A file without BUNIT is read as electrons with one warning per file (naming the header's
    gain, if any); any other unit is refused with a ValueError naming it.  Scaled integer images (BZERO / BSCALE /
    BLANK: raw uint16 frames, scaled DQ) are unscaled by astropy; BLANK pixels become NaN
    and are ignored.  Warnings also say when a file without SCI is read from another
    extension, when an extension is all NaN, and when fill values (beyond
    `MAX_ABS_ELECTRONS`) are ignored.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not FITS, is truncated (plain or gzip), has no 2-D image, the image
        is empty or not 2-D, the unit cannot be converted, or the DQ array does not match
        the image.
    TypeError
        If ``bunit``, ``gain_e_per_adu``, ``exptime_s``, ``dq_flags`` or ``instrument`` has the
        wrong type.
    """
    path = os.fspath(path)
    dq_flags = None if dq_flags is None else _check_dq_flags(dq_flags)
    spec = None if instrument is None else get_instrument(instrument)
    bunit = check_unit_name(bunit, "bunit")
    gain_e_per_adu = check_optional_positive(gain_e_per_adu, "gain_e_per_adu")
    exptime_s = check_optional_positive(exptime_s, "exptime_s")
    if not os.path.exists(path):
        link = f" (a symbolic link to {os.readlink(path)!r}, which does not exist)" if os.path.islink(path) else ""
        raise FileNotFoundError(f"FITS file {path!r} does not exist{link}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, expected a FITS file")
    _check_gzip_complete(path)
    with warnings.catch_warnings():
        # astropy only warns about a short file, then fails later with a message naming no file
        warnings.filterwarnings("error", message="File may have been truncated",
                                category=AstropyUserWarning)
        try:
            # memmap=None (not True): memory-mapped where possible, and scaled integer images
            # (BZERO/BSCALE/BLANK, e.g. raw uint16 frames) are read into memory instead of refused
            hdul = fits.open(path)
        except AstropyUserWarning as err:
            raise ValueError(f"{path!r} is truncated ({err})") from None
        except (OSError, TypeError, ValueError) as err:
            raise ValueError(f"{path!r} is not a readable FITS file ({err})") from err
        with hdul:
            try:
                primary = hdul[0].header
                if spec is None:
                    spec = instrument_for_header(primary)
                if dq_flags is None:
                    dq_flags = DEFAULT_DQ_FLAGS if spec is None else spec.reader.dq_ignore_bits
                indices = _science_indices(hdul, path, ext, spec)
                images = []
                for i in indices:  # a plain loop keeps warnings' stacklevel pointing at the caller
                    images.append(_read_extension(hdul, i, path, primary, dq_flags, bunit,
                                                  gain_e_per_adu, exptime_s, spec))
            except AstropyUserWarning as err:
                raise ValueError(f"{path!r} is truncated ({err})") from None
            except (OSError, TypeError) as err:  # e.g. "buffer is too small for requested array"
                raise ValueError(f"{path!r} is not a readable FITS file ({err})") from err
    _warn_spec_gain(images, spec, path)
    if gain_e_per_adu is not None and all(im.gain_e_per_adu is None for im in images):
        units = ", ".join(sorted({"electrons (no BUNIT)" if im.bunit_used is None else str(im.bunit_used)
                                  for im in images}))
        warnings.warn(f"{path!r}: gain_e_per_adu={gain_e_per_adu:g} (--gain) was not used: the pixels are in "
                      f"{units}, not counts", UserWarning, stacklevel=2)
    assumed = [f"{im.extname},{im.extver}" for im in images if im.bunit_used is None]
    if assumed:
        keywords = GAIN_KEYWORDS if spec is None else spec.reader.gain_keywords
        gain = header_number((images[0].header, images[0].primary_header), keywords)
        hint = (f"; the header gives a gain of {gain:g} e-/ADU: if the pixels are counts, pass "
                "bunit='ADU' (--bunit ADU)" if gain is not None else "")
        warnings.warn(f"{path!r}: no BUNIT keyword in extension(s) {', '.join(assumed)}; pixels "
                      f"are read as electrons (pass bunit= to state the unit){hint}",
                      UserWarning, stacklevel=2)
    return images


# --------------------------------------------------------------------------- helpers


def _check_dq_flags(dq_flags):
    dq_flags = check_int(dq_flags, "dq_flags (a bit mask)", minimum=0)
    if dq_flags > MAX_INT64:  # DQ pixels are compared as int64
        raise ValueError(f"dq_flags must be a bit mask in [0, 2**63 - 1], got {dq_flags!r}")
    return dq_flags


def _warn_spec_gain(images, spec, path):
    """One warning per file when the spec's default gain converted counts (no header gain)."""
    used = [f"{im.extname},{im.extver}" for im in images if im.gain_from_spec]
    if used:
        warnings.warn(f"{path!r}: no gain keyword ({'/'.join(spec.reader.gain_keywords)}) in "
                      f"extension(s) {', '.join(used[:5])}{' ...' if len(used) > 5 else ''}; using the "
                      f"{spec.name} spec's gain {spec.detector.gain_e_per_adu:g} e-/ADU (pass "
                      "gain_e_per_adu= / --gain to state it)", UserWarning, stacklevel=3)


def _check_gzip_complete(path):
    """Decompress a gzip file to its end; astropy reads a truncated one as if it had fewer HDUs."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path!r} is a truncated or corrupt gzip file ({err})") from None


def _has_image(hdu):
    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and \
        hdu.header.get("NAXIS", 0) > 0


def _science_indices(hdul, path, ext, spec):
    """HDU indices to read: the requested one, every science extension of the spec (else every
    SCI), the primary, or the first image."""
    if ext is not None:
        try:
            hdu = hdul[ext]
        except (KeyError, IndexError) as err:
            raise ValueError(f"{path!r} has no extension {ext!r}") from err
        return [hdul.index(hdu)]
    is_science = (lambda name: name == "SCI") if spec is None else spec.reader.is_science
    sci = [i for i, hdu in enumerate(hdul) if i > 0 and is_science(hdu.name) and _has_image(hdu)]
    if sci:
        return sci
    images = [i for i, hdu in enumerate(hdul) if _has_image(hdu)]
    if not images:
        raise ValueError(f"{path!r} has no image extension (no HDU with pixel data)")
    if images[0] != 0:
        hdu = hdul[images[0]]
        wanted = "SCI" if spec is None else "/".join(spec.reader.science_extnames)
        warnings.warn(f"{path!r} has no {wanted} extension; reading extension {images[0]} "
                      f"({hdu.name or 'unnamed'},{hdu.ver or 1}), its first image, of {len(images)} "
                      "(pass ext= / --ext to choose another)", UserWarning, stacklevel=4)
    return images[:1]


def _celestial_wcs(hdul, header, path, where):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, fobj=hdul)
        except Exception as err:  # astropy raises many types for malformed WCS keywords
            warnings.warn(f"{path!r} {where}: WCS could not be read ({err}); wcs=None",
                          UserWarning, stacklevel=4)
            return None
    return wcs if wcs.has_celestial else None


def _read_extension(hdul, index, path, primary, dq_flags, bunit, gain_e_per_adu, exptime_s, spec):
    hdu = hdul[index]
    extname = hdu.name or ("PRIMARY" if index == 0 else str(index))
    extver = int(hdu.ver) if hdu.ver else 1
    where = f"extension {extname},{extver}"
    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        raise ValueError(f"{path!r} {where} is a {type(hdu).__name__}, not an image")
    data = hdu.data
    if data is None or data.size == 0:
        raise ValueError(f"{path!r} {where} is empty (no pixel data)")
    if data.ndim != 2:
        raise ValueError(f"{path!r} {where} has shape {data.shape}; expected a 2-D image "
                         "(cubes are not supported: pass one plane)")
    header = hdu.header.copy()
    headers = (header, primary) if index != 0 else (header,)
    found_bunit = header.get("BUNIT", primary.get("BUNIT") if index != 0 else None)
    if isinstance(found_bunit, str) and not found_bunit.strip():
        found_bunit = None
    bunit_used = bunit if bunit is not None else found_bunit
    if bunit_used is None and spec is not None:
        bunit_used = spec.reader.bunit  # the camera's unit when the header states none
    factor, gain_used, gain_from_spec = electrons_per_unit(bunit_used, headers, path, where,
                                                           gain_e_per_adu, exptime_s, spec)

    image = np.array(data, dtype=np.float64)  # (H, W), native byte order, detached from file
    image *= factor
    nonfinite = ~np.isfinite(image)
    with np.errstate(invalid="ignore"):
        extreme = ~nonfinite & (np.abs(image) > MAX_ABS_ELECTRONS)
    if nonfinite.all():
        warnings.warn(f"{path!r} {where}: every pixel is NaN or infinite; all are ignored and "
                      "its maps carry no information", UserWarning, stacklevel=4)
    elif extreme.any():
        row, col = np.argwhere(extreme)[0]
        warnings.warn(f"{path!r} {where}: {int(extreme.sum())} pixel(s) beyond "
                      f"{MAX_ABS_ELECTRONS:.0e} e- in magnitude (first at row {row}, column {col}: "
                      f"{image[row, col]:.3g} e-) are fill values, not charge; they are ignored "
                      "like NaN pixels", UserWarning, stacklevel=4)
    ignore = nonfinite | extreme
    if ignore.any():
        usable = image[~ignore]
        image[ignore] = np.median(usable) if usable.size else 0.0
    image = image.astype(np.float32)

    dq_name = "DQ" if spec is None else spec.reader.dq_extname
    if dq_flags and dq_name and (dq_name, extver) in hdul:
        dq = hdul[dq_name, extver].data
        if dq is not None:  # an all-zero DQ may be stored without pixels
            if dq.shape != image.shape:
                raise ValueError(f"{path!r} {dq_name},{extver} has shape {dq.shape} but {where} "
                                 f"has shape {image.shape}")
            ignore |= (dq.astype(np.int64) & dq_flags) != 0

    keyword = "EXPTIME" if spec is None else spec.reader.exptime_keyword
    t = exptime_s if exptime_s is not None else header_number(headers, (keyword,))
    return HSTImage(
        image=image,
        ignore=ignore,
        header=header,
        primary_header=primary.copy(),
        wcs=_celestial_wcs(hdul, header, path, where),
        extname=extname,
        extver=extver,
        bunit=found_bunit,
        electrons_per_unit=float(factor),
        bunit_used=bunit_used,
        gain_e_per_adu=gain_used,
        exptime_s=t,
        path=path,
        instrument=None if spec is None else spec.name,
        gain_from_spec=gain_from_spec,
    )
