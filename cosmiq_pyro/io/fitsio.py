"""Read HST-style CCD frames from FITS into electrons, with an ``ignore`` mask from DQ flags.

`read_hst` returns one `HSTImage` per science extension (both WFC chips of an ACS
``_flc``/``_flt`` file, or the primary image of a simple FITS file): the pixels in
electrons as float32, a boolean ``ignore`` mask (DQ bits in ``dq_flags``, plus any
non-finite pixel), the extension header, the primary header and the celestial WCS.

`write_hdulist_atomic` (`cosmiq_pyro.io.fitswrite`) writes an `~astropy.io.fits.HDUList` to a
temporary file beside the target and renames it into place, so a crash never leaves a half-written
product.  The unit conversion is `cosmiq_pyro.io.fitsunits`.

DQ flag values (ACS Data Handbook; STScI "ACS Data Quality Flags" page)
-----------------------------------------------------------------------
====== ======================================================  ==========
bit    meaning                                                 in default
====== ======================================================  ==========
1      Reed-Solomon decoding error (data lost)                 yes
2      data replaced by fill value                             yes
4      bad detector pixel, or beyond aperture / vignetted      yes
8      masked by an aperture feature (HRC occulting finger)    yes
16     hot pixel (dark current > 0.14 e-/s)                    yes
32     unstable dark current (telegraph noise, fading hot)     yes
64     warm pixel (0.06-0.14 e-/s)                             no
128    bias structure (bad or unstable columns)                yes
256    full-well saturated                                     yes
512    bad pixel in a reference file (flat edges, dust motes)  no
1024   charge trap / sink pixel                                yes
2048   A-to-D saturated                                        yes
4096   cosmic ray flagged by AstroDrizzle                      never
8192   cosmic ray flagged by CALACS (ACSREJ)                   never
====== ======================================================  ==========

The default marks pixels whose value is not a measurement of the sky (lost, filled,
defective, saturated, trapped) or whose dark correction is unreliable enough to mimic a
cosmic ray (hot, unstable).  Warm pixels (64) are corrected well by the superdark and are
numerous, and 512 flags large areas (dust motes, flat edges) whose pixels are still real
data; both stay usable.  The cosmic-ray bits 4096 and 8192 are never in the default:
they come from earlier CR rejection, and masking them would hide exactly the pixels a
cosmic-ray detector is asked about.
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

from .fitsunits import GAIN_KEYWORDS, check_optional_positive, check_unit_name, electrons_per_unit, header_number
from .fitswrite import write_hdulist_atomic
from ..utils.checks import MAX_INT64, check_int

__all__ = [
    "DEFAULT_DQ_FLAGS",
    "CR_DQ_FLAGS",
    "MAX_ABS_ELECTRONS",
    "HSTImage",
    "read_hst",
    "write_hdulist_atomic",
]

#: DQ bits treated as bad pixels by default (see the module docstring's table).
DEFAULT_DQ_FLAGS = 1 | 2 | 4 | 8 | 16 | 32 | 128 | 256 | 1024 | 2048  # = 3519

#: DQ bits set by earlier cosmic-ray rejection (AstroDrizzle 4096, CALACS 8192).
CR_DQ_FLAGS = 4096 | 8192

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


def read_hst(path, ext=None, dq_flags=DEFAULT_DQ_FLAGS, *, bunit=None, gain_e_per_adu=None,
             exptime_s=None):
    """Read every science extension of an HST-style FITS file, in electrons.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file (``_flc``/``_flt``/``_drc`` or any single-image FITS).
    ext : int, str or (str, int), optional
        Read only this extension (``1``, ``"SCI"``, ``("SCI", 2)``).  By default every
        ``SCI`` extension is read; a file without ``SCI`` extensions yields its primary
        image, or else its first image extension.
    dq_flags : int, optional
        DQ bits that mark a pixel as bad (default `DEFAULT_DQ_FLAGS`); 0 uses no DQ.  The
        DQ extension is the one whose EXTVER matches the science extension.
    bunit : str, optional
        Unit to assume instead of the header's BUNIT (e.g. for files without one).
    gain_e_per_adu : float, optional
        Gain for count units, overriding CCDGAIN / ATODGAIN / GAIN from the headers.
    exptime_s : float, optional
        Exposure time for rate units, overriding EXPTIME from the headers.

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
        If ``bunit``, ``gain_e_per_adu``, ``exptime_s`` or ``dq_flags`` has the wrong type.
    """
    path = os.fspath(path)
    dq_flags = _check_dq_flags(dq_flags)
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
                indices = _science_indices(hdul, path, ext)
                primary = hdul[0].header
                images = []
                for i in indices:  # a plain loop keeps warnings' stacklevel pointing at the caller
                    images.append(_read_extension(hdul, i, path, primary, dq_flags, bunit,
                                                  gain_e_per_adu, exptime_s))
            except AstropyUserWarning as err:
                raise ValueError(f"{path!r} is truncated ({err})") from None
            except (OSError, TypeError) as err:  # e.g. "buffer is too small for requested array"
                raise ValueError(f"{path!r} is not a readable FITS file ({err})") from err
    assumed = [f"{im.extname},{im.extver}" for im in images if im.bunit_used is None]
    if assumed:
        gain = header_number((images[0].header, images[0].primary_header), GAIN_KEYWORDS)
        hint = (f"; the header gives a gain of {gain:g} e-/ADU: if the pixels are counts, pass "
                "bunit='ADU' (--bunit ADU)" if gain is not None else "")
        warnings.warn(f"{path!r}: no BUNIT keyword in extension(s) {', '.join(assumed)}; pixels "
                      f"are read as electrons (pass bunit= to state the unit){hint}",
                      UserWarning, stacklevel=2)
    return images


# --------------------------------------------------------------------------- helpers


def _check_dq_flags(dq_flags):
    if dq_flags is None:
        return 0
    dq_flags = check_int(dq_flags, "dq_flags (a bit mask)", minimum=0)
    if dq_flags > MAX_INT64:  # DQ pixels are compared as int64
        raise ValueError(f"dq_flags must be a bit mask in [0, 2**63 - 1], got {dq_flags!r}")
    return dq_flags


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


def _science_indices(hdul, path, ext):
    """HDU indices to read: the requested one, every SCI, the primary, or the first image."""
    if ext is not None:
        try:
            hdu = hdul[ext]
        except (KeyError, IndexError) as err:
            raise ValueError(f"{path!r} has no extension {ext!r}") from err
        return [hdul.index(hdu)]
    sci = [i for i, hdu in enumerate(hdul) if hdu.name == "SCI" and _has_image(hdu)]
    if sci:
        return sci
    images = [i for i, hdu in enumerate(hdul) if _has_image(hdu)]
    if not images:
        raise ValueError(f"{path!r} has no image extension (no HDU with pixel data)")
    if images[0] != 0:
        hdu = hdul[images[0]]
        warnings.warn(f"{path!r} has no SCI extension; reading extension {images[0]} "
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


def _read_extension(hdul, index, path, primary, dq_flags, bunit, gain_e_per_adu, exptime_s):
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
    factor, gain_used = electrons_per_unit(bunit_used, headers, path, where, gain_e_per_adu,
                                            exptime_s)

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

    if dq_flags and ("DQ", extver) in hdul:
        dq = hdul["DQ", extver].data
        if dq is not None:  # an all-zero DQ may be stored without pixels
            if dq.shape != image.shape:
                raise ValueError(f"{path!r} DQ,{extver} has shape {dq.shape} but {where} "
                                 f"has shape {image.shape}")
            ignore |= (dq.astype(np.int64) & dq_flags) != 0

    t = exptime_s if exptime_s is not None else header_number(headers, ("EXPTIME",))
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
    )
