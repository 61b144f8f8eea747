"""Names of pixel units as FITS headers spell them (BUNIT), and what each one is.

astropy.units does not parse them reliably (``"ELECTRONS"`` fails; ``"DN/S"`` parses as DN per
siemens), hence this table.  `cosmiq_pyro.io.fitsunits` turns a unit into the factor to
electrons; a spec's ``[reader] bunit`` and ``[models] deepcr_input_unit`` are checked here.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["PixelUnit", "parse_bunit", "UNIT_HELP"]

_ELECTRON_NAMES = {"ELECTRONS", "ELECTRON", "E-", "E"}
_COUNT_NAMES = {"COUNTS", "COUNT", "CTS", "CT", "ADU", "ADUS", "DN"}
_SECOND_NAMES = {"S", "SEC", "SECOND", "SECONDS"}
#: What a unit may be, for error messages.
UNIT_HELP = "ELECTRONS, ELECTRONS/S, COUNTS (ADU, DN) or COUNTS/S"


class PixelUnit(NamedTuple):
    """A parsed pixel unit: ``counts`` (ADU/DN/COUNTS, else electrons), ``rate`` (per second)."""

    counts: bool
    rate: bool


def parse_bunit(text) -> PixelUnit | None:
    """`PixelUnit` of a BUNIT value (any case and spacing), or None when it is not one of
    `UNIT_HELP`."""
    if not isinstance(text, str):
        return None
    parts = text.strip().upper().replace(" ", "").split("/")
    numerator = parts[0]
    rate = len(parts) == 2 and parts[1] in _SECOND_NAMES
    if len(parts) > 2 or (len(parts) == 2 and not rate) or \
            numerator not in _ELECTRON_NAMES | _COUNT_NAMES:
        return None
    return PixelUnit(counts=numerator in _COUNT_NAMES, rate=rate)
