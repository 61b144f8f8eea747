"""Write an astropy `~astropy.io.fits.HDUList` atomically (`write_hdulist_atomic`), and tile-compressed
image extensions (`compressed_image_hdu`).

The file goes to a temporary file beside the target and is renamed into place, so a crash never
leaves a half-written product (`cosmiq_pyro.io.atomic` names and cleans the temporaries).

Compression (FITS tiled image convention, Pence et al. 2010; what `funpack`/`fpack`, DS9 and
astropy read): a float map is quantised to integers with an absolute step ``q`` and subtractive
dithering with a fixed seed (``SUBTRACTIVE_DITHER_2``: exact zeros stay zero, NaN is kept as a
null value; a stored value differs from the computed one by at most ``q / 2``) and the integers
are HCOMPRESS-coded losslessly in tiles of 16 full rows; integer maps are Rice-coded losslessly.
The same maps always give the same bytes.  The encodings were chosen by experiment
(docs/products.md, benchmarks/bench_products.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from .atomic import fsync_directory, naming_output, remove_stale_temporaries, temporary_path

__all__ = ["write_hdulist_atomic", "compressed_image_hdu", "TILE_ROWS", "DITHER_SEED"]

#: Rows per compression tile (docs/products.md).
TILE_ROWS = 16
#: Dither seed of every quantised map (cfitsio's ZDITHER0, 1..10000): fixed, so the same maps
#: always give the same bytes.
DITHER_SEED = 1


def compressed_image_hdu(data, *, name: str, ver: int = 1, quantize_step: float | None = None,
                         header=None) -> fits.CompImageHDU:
    """A tile-compressed image extension of ``data`` (tiles of `TILE_ROWS` full rows).

    Parameters
    ----------
    data : ndarray (H, W)
        Float or integer pixels.
    name, ver : str, int
        EXTNAME and EXTVER.
    quantize_step : float, optional
        Floats only: store ``round((x - z) / q + r)`` (``ZQUANTIZ = SUBTRACTIVE_DITHER_2``, ``q``
        this absolute step, ``r`` the dither of the fixed seed `DITHER_SEED`, exact zeros kept)
        HCOMPRESS-coded without loss of the integers, so every stored value is within
        ``quantize_step / 2`` of ``data`` (NaN stays NaN).  None: lossless (RICE_1).
    header : astropy.io.fits.Header, optional
        Cards for the image header.

    GZIP codecs are not used: astropy's writes the time into every tile's gzip header, so the
    same array would not give the same bytes.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data must be 2-D, got shape {data.shape}")
    header = fits.Header() if header is None else header.copy()
    header["EXTNAME"], header["EXTVER"] = name, int(ver)
    options = dict(header=header, name=name, tile_shape=(min(TILE_ROWS, data.shape[0]), data.shape[1]))
    if data.dtype.kind == "f" and quantize_step is not None:
        if not quantize_step > 0:
            raise ValueError(f"quantize_step must be > 0, got {quantize_step!r}")
        # HCOMPRESS needs tiles of at least 4 x 4 px; Rice codes any
        kind = "HCOMPRESS_1" if min(options["tile_shape"]) >= 4 else "RICE_1"
        return fits.CompImageHDU(data, compression_type=kind, quantize_level=-float(quantize_step),
                                 quantize_method=2, dither_seed=DITHER_SEED, **options)
    if data.dtype.kind == "f":
        return fits.CompImageHDU(data, compression_type="RICE_1", quantize_level=0.0, **options)
    return fits.CompImageHDU(data, compression_type="RICE_1", **options)


def write_hdulist_atomic(hdul, path, overwrite=False):
    """Write ``hdul`` to ``path`` through a temporary file in the same directory.

    The file appears under its final name only once it is complete (``os.link`` when
    ``overwrite`` is False, so an existing file is never clobbered even by a race;
    ``os.replace`` otherwise).  Every HDU gets CHECKSUM and DATASUM cards (the FITS checksum
    convention), so a damaged copy can be told from a whole one.  The temporary file is fsync-ed before the rename and the
    directory after it; it is removed on any failure, and temporaries of ``path`` left by
    killed processes are removed first (`atomic.remove_stale_temporaries`).

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList or HDU
        What to write (a single HDU is wrapped in an HDUList).
    path : str or os.PathLike
        Destination file.
    overwrite : bool, optional
        Replace an existing ``path``.  Without it an existing file raises FileExistsError.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    if isinstance(hdul, fits.PrimaryHDU):
        hdul = fits.HDUList([hdul])
    elif isinstance(hdul, (fits.ImageHDU, fits.BinTableHDU, fits.TableHDU)):
        hdul = fits.HDUList([fits.PrimaryHDU(), hdul])
    if not isinstance(hdul, fits.HDUList):
        raise TypeError(
            f"hdul must be an astropy.io.fits HDUList or HDU, got {type(hdul).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output path {str(path)!r} is a directory")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory {str(path.parent)!r} does not exist")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    try:
        # created exclusively, then opened by name: astropy reports a full disk as an OSError only
        # for a file object with a path name (for an fd-only one it raises an AttributeError)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        with open(tmp, "wb") as fh:
            hdul.writeto(fh, output_verify="exception", checksum=True)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic: fails if path appeared meanwhile
            except FileExistsError:
                raise FileExistsError(
                    f"{str(path)!r} exists; pass overwrite=True to replace it") from None
            except OSError:  # filesystem without hard links
                if path.exists():
                    raise FileExistsError(
                        f"{str(path)!r} exists; pass overwrite=True to replace it") from None
                os.replace(tmp, path)
        fsync_directory(path.parent)
    except FileExistsError:
        raise
    except OSError as err:  # a full disk, a quota, an I/O error: one line naming the output
        raise naming_output(err, path) from err
    finally:
        tmp.unlink(missing_ok=True)
    return path
