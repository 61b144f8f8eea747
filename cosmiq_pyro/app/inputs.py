"""The input frames of a batch: files, directories, glob patterns and ``@list`` files, expanded
to FITS paths, and the product name each input gets (``<name>_cosmiq.fits``)."""
from __future__ import annotations

import functools
import glob
import os
import re
from pathlib import Path

from ..instruments import get_instrument, list_instruments

__all__ = ["expand_inputs", "product_name", "FITS_SUFFIXES", "PRODUCT_SUFFIX"]

#: File name endings read as FITS when a directory or glob is expanded (any case).
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fit.fz")
#: Appended to an input's name (less its FITS suffix) to name its product.
PRODUCT_SUFFIX = "_cosmiq.fits"


def expand_inputs(inputs) -> list[Path]:
    """The FITS files that ``inputs`` name, in order, each once.

    Parameters
    ----------
    inputs : str, os.PathLike or sequence of them
        Each one of

        * a file (kept even if it does not exist: `predict_many` then reports it as failed);
        * a directory: its FITS files (`FITS_SUFFIXES`, not recursive, sorted by name), except
          products (``*_cosmiq.fits``); a FITS name that is a dangling symbolic link is kept, so
          that `predict_many` reports it as failed (naming the link's target).  A directory
          holding a known camera's calibrated
          exposures (the file name endings of its spec, ``[reader] suffixes``: ``*_flc.fits``,
          ``*_flt.fits`` for ACS/WFC and WFC3/UVIS, ``*_ooi_*.fits.fz`` for DECam) yields only
          those, and for an exposure present under several endings only the spec's first (the
          CTE-corrected ``_flc`` before ``_flt``): raw, drizzled, association, mask and support
          files are not single calibrated exposures;
        * a glob pattern (``*``, ``?``, ``[...]``; ``**`` recurses): the FITS files and
          directories it matches, products left out;
        * ``@list.txt``: a text file naming one input (file, directory or pattern) per line;
          blank lines and lines starting with ``#`` are skipped; relative paths are relative
          to the list file's directory.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    FileNotFoundError
        A list file that does not exist.
    ValueError
        A directory without FITS files, a pattern matching none, a list naming nothing, or no
        inputs at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    frames: dict[str, Path] = {}
    for spec in inputs:
        if not isinstance(spec, (str, os.PathLike)):
            raise TypeError(f"inputs must be paths, patterns or @lists, got {type(spec).__name__}")
        for path in _expand(os.fspath(spec), allow_list=True):
            frames.setdefault(os.path.abspath(path), path)
    if not frames:
        raise ValueError("no input frames given")
    return list(frames.values())


def product_name(path) -> str:
    """``<name>_cosmiq.fits`` for an input ``<name>.fits`` (or ``.fits.gz``, ``.fit``, ``.fts``)."""
    name = Path(path).name
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}{PRODUCT_SUFFIX}"


def _expand(spec: str, *, allow_list: bool, base: str = "") -> list[Path]:
    if allow_list and spec.startswith("@"):
        return _read_list(spec[1:])
    path = Path(base, spec) if base else Path(spec)
    if path.is_dir():
        found = _directory_frames(path)
        if not found:
            raise ValueError(f"directory {str(path)!r} holds no FITS files "
                             f"({', '.join('*' + s for s in FITS_SUFFIXES[:2])}, ...)")
        return found
    if path.exists() or not glob.has_magic(spec):
        return [path]
    found = []
    for match in sorted(glob.glob(str(path), recursive=True)):
        match = Path(match)
        if match.is_dir():
            found += _directory_frames(match)
        elif _is_fits(match.name) and not _is_product(match.name):
            found.append(match)
    if not found:
        raise ValueError(f"pattern {spec!r} matches no FITS file")
    return found


def _read_list(name: str) -> list[Path]:
    listing = Path(name)
    if not listing.is_file():
        raise FileNotFoundError(f"input list '@{name}' does not exist (expected a text file naming "
                                "one FITS file, directory or pattern per line)")
    try:
        lines = listing.read_text().splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"input list '@{name}' is not a text file ({err.reason})") from None
    found = []
    for line in (line.strip() for line in lines):
        if line and not line.startswith("#"):
            found += _expand(line, allow_list=False, base=str(listing.parent))
    if not found:
        raise ValueError(f"input list '@{name}' names no input")
    return found


def _directory_frames(folder: Path) -> list[Path]:
    # a dangling symbolic link is kept: the batch reports it (a failed input naming its target)
    files = sorted(p for p in folder.iterdir()
                   if (p.is_file() or (p.is_symlink() and not p.exists())) and _is_fits(p.name) and not _is_product(p.name))
    best = {}  # (camera, exposure stem) -> (preference, path)
    for path in files:
        for camera, rank, stem in _exposure_keys(path.name):
            key = (camera, stem)
            if key not in best or rank < best[key][0]:
                best[key] = (rank, path)
    if not best:
        return files
    keep = {path for _, path in best.values()}
    return [p for p in files if p in keep]


@functools.lru_cache(maxsize=1)
def _suffix_patterns():
    """(camera, preference, regex of a file name with that ending; group 1 = the exposure stem)."""
    out = []
    for name in list_instruments():
        for rank, suffix in enumerate(get_instrument(name).reader.suffixes):
            ending = ".*".join(re.escape(part) for part in suffix.split("*"))
            out.append((name, rank, re.compile(f"^(.+?){ending}$", re.IGNORECASE)))
    return tuple(out)


def _exposure_keys(name: str):
    """``(camera, preference, stem)`` for every spec whose file endings ``name`` has."""
    for camera, rank, pattern in _suffix_patterns():
        match = pattern.match(name)
        if match:
            yield camera, rank, match.group(1).lower()


def _is_fits(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


def _is_product(name: str) -> bool:
    return product_name(name)[: -len(PRODUCT_SUFFIX)].lower().endswith(PRODUCT_SUFFIX[:-5])
