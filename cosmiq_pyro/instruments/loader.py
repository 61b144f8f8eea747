"""Finding specs: by name among the shipped ones, from a user's TOML file, or from a header.

The shipped specs are the ``specs/<NAME>.toml`` files of this package (package data); a name
is matched case-insensitively.  A path (anything ending in ``.toml``, or an existing file) is
read as the user's own spec.  Specs are read once per process and cached (they are frozen).
"""
from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path

from .fields import SpecError
from .schema import Instrument

__all__ = ["SPEC_DIR", "get_instrument", "list_instruments", "instrument_for_header", "instrument_for_deepcr",
           "read_spec", "spec_path"]

#: Directory of the shipped spec files.
SPEC_DIR = Path(__file__).parent / "specs"


def list_instruments() -> list[str]:
    """Names of the shipped specs, sorted (e.g. ``["ACS-WFC", "DECam", "WFC3-UVIS"]``)."""
    return sorted((p.stem for p in SPEC_DIR.glob("*.toml")), key=str.lower)


def spec_path(name: str) -> Path:
    """The shipped TOML file of ``name`` (a starting point for one's own spec: copy it)."""
    by_lower = {n.lower(): n for n in list_instruments()}
    if not isinstance(name, str) or name.lower() not in by_lower:
        raise ValueError(f"no shipped instrument spec {name!r}; shipped: {', '.join(list_instruments())}; "
                         "or give the path of a .toml spec")
    return SPEC_DIR / f"{by_lower[name.lower()]}.toml"


def get_instrument(name_or_path) -> Instrument:
    """The `Instrument` for a shipped name or a user's TOML spec file.

    Parameters
    ----------
    name_or_path : str, os.PathLike or Instrument
        ``"ACS-WFC"``, ``"WFC3-UVIS"``, ``"DECam"`` (any case; see `list_instruments`), the path
        of a TOML spec, or an `Instrument` (returned as is).

    Raises
    ------
    TypeError
        ``name_or_path`` of another type.
    FileNotFoundError
        A ``.toml`` path that does not exist.
    ValueError
        An unknown name, or a spec that is not valid TOML or misses / mistypes a field (the
        one-line message names the file and the field).
    """
    if isinstance(name_or_path, Instrument):
        return name_or_path
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"instrument must be a spec name, a .toml path or an Instrument, got "
                        f"{type(name_or_path).__name__}")
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or text.lower().endswith(".toml") or os.path.isfile(text):
        return read_spec(text)
    return read_spec(spec_path(text))


def read_spec(path) -> Instrument:
    """Read and check one TOML spec file (cached by absolute path and modification time)."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"instrument spec {path!r} does not exist")
    return _read_cached(path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int) -> Instrument:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"instrument spec {path}: not valid TOML ({err})") from None
    return Instrument.from_dict(data, origin=path, source=path)


def _lookup(headers):
    """``keyword -> value`` over one header / mapping or a sequence of them (first found wins)."""
    if hasattr(headers, "get") and not isinstance(headers, (list, tuple)):
        headers = (headers,)

    def lookup(key):
        for header in headers:
            value = header.get(key)
            if value is not None and str(value).strip():
                return value
        return None

    return lookup


def instrument_for_header(header, candidates=None) -> Instrument | None:
    """The camera whose spec matches a FITS header, or None.

    Parameters
    ----------
    header : astropy.io.fits.Header, mapping, or sequence of them
        Where TELESCOP / INSTRUME / DETECTOR are looked up (a sequence is searched in order,
        e.g. ``(primary_header, extension_header)``).
    candidates : sequence of str, os.PathLike or Instrument, optional
        Specs to try (default: every shipped spec, `list_instruments`).

    Returns
    -------
    Instrument or None
        The spec whose ``[camera.match]`` values all match, the one constraining most keywords
        when several do; None when none matches (a camera without spec: read as before).

    Raises
    ------
    ValueError
        When two equally specific specs match (their names are given).
    """
    lookup = _lookup(header)
    specs = [get_instrument(c) for c in (list_instruments() if candidates is None else candidates)]
    scored = sorted(((spec.match.score(lookup), spec) for spec in specs), key=lambda s: -s[0])
    if not scored or scored[0][0] == 0:
        return None
    if len(scored) > 1 and scored[1][0] == scored[0][0]:
        raise ValueError(f"header matches instrument specs {scored[0][1].name!r} and "
                         f"{scored[1][1].name!r} equally; pass instrument= to choose")
    return scored[0][1]


def instrument_for_deepcr(name) -> Instrument | None:
    """The shipped spec whose ``[models] deepcr`` is deepCR's mask model ``name``, or None.

    The one lookup from a deepCR model name to its camera: the model registry takes the input
    unit (and gain) of deepCR's published weights from it, the deepCR facade reports the unit.

    >>> instrument_for_deepcr("decam").models.deepcr_input_unit
    'ADU'
    """
    if not isinstance(name, str):
        return None
    for camera in list_instruments():
        spec = get_instrument(camera)
        if spec.models.deepcr == name:
            return spec
    return None
