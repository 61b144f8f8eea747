"""Which camera a simulation is of: `resolve_instrument` turns a name, a spec path or an
`cosmiq_pyro.instruments.Instrument` into an instrument whose spec can be simulated."""
from __future__ import annotations

import os

from ...instruments import Instrument, get_instrument

__all__ = ["DEFAULT_INSTRUMENT", "resolve_instrument"]

#: The camera simulated when none is named.
DEFAULT_INSTRUMENT = "ACS-WFC"


def resolve_instrument(instrument=DEFAULT_INSTRUMENT) -> Instrument:
    """The `Instrument` of ``instrument`` (a shipped name such as ``"DECam"``, a path to a TOML
    spec, or an `Instrument`), checked to have a ``[simulation]`` section.

    Raises
    ------
    ValueError
        If the spec has no ``[simulation]`` section (or is not a camera, see `get_instrument`).
    TypeError
        If ``instrument`` is none of the three.
    FileNotFoundError
        For a spec path that does not exist.
    """
    if isinstance(instrument, Instrument):
        inst = instrument
    elif isinstance(instrument, (str, os.PathLike)):
        inst = get_instrument(os.fspath(instrument))
    else:
        raise TypeError(f"instrument must be a camera name, a spec path or an Instrument, "
                        f"got {type(instrument).__name__}")
    if inst.simulation is None:
        raise ValueError(f"instrument {inst.name!r} has no [simulation] section in its spec "
                         f"({inst.source or 'no file'}): it cannot be simulated")
    return inst

