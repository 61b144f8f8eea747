"""Pixel units of FITS frames: the factor from BUNIT (with gain and exposure time) to electrons.

.. math::

    e^- = d \\cdot
    \\begin{cases}
    1 & \\text{ELECTRONS} \\\\
    t_\\mathrm{exp} & \\text{ELECTRONS/S} \\\\
    g & \\text{COUNTS (ADU, DN)} \\\\
    g\\, t_\\mathrm{exp} & \\text{COUNTS/S}
    \\end{cases}

with :math:`d` the stored pixel value, :math:`t_\\mathrm{exp}` from EXPTIME and :math:`g` (e-/ADU)
from the camera's gain keywords (its spec's ``[reader] gain_keywords``; CCDGAIN, ATODGAIN or GAIN
for a camera without spec; the headers searched in order), else the spec's default gain.
"""
from __future__ import annotations

import numpy as np

from ..instruments.units import UNIT_HELP, parse_bunit

__all__ = ["GAIN_KEYWORDS", "electrons_per_unit", "header_number", "check_unit_name", "check_optional_positive"]

#: Gain keywords searched for a frame whose camera has no spec (a spec names its own,
#: `cosmiq_pyro.instruments.ReaderSpec.gain_keywords`): HST's CCDGAIN / ATODGAIN, then GAIN.
GAIN_KEYWORDS = ("CCDGAIN", "ATODGAIN", "GAIN")


def header_number(headers, names):
    """First number among ``names`` found in ``headers`` (searched in order).

    A number stored as a string (``GAIN = '1.9'``, as some ground-based headers do) is read; a
    string that is not a number, a logical and an undefined value are passed over.
    """
    for header in headers:
        for name in names:
            value = header.get(name)
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    continue
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
                return float(value)
    return None


def electrons_per_unit(bunit, headers, path, where, gain_e_per_adu, exptime_s, instrument=None):
    """The factor from the file's unit ``bunit`` to electrons (the module's formula).

    Returns ``(factor, gain, gain_from_spec)``: the gain used (None for electron units) and
    whether it is the spec's default because no argument and no header gave one.

    Precedence, for the gain and the exposure time alike: the argument (``gain_e_per_adu``,
    ``exptime_s``), then the headers (``instrument``'s ``gain_keywords`` / ``exptime_keyword``,
    or `GAIN_KEYWORDS` / EXPTIME for a camera without spec), then, for the gain only, the spec's
    ``[detector] gain_e_per_adu``.  ``path`` and ``where`` name the extension in errors.
    ``bunit=None`` is read as electrons (factor 1).
    """
    if bunit is None:  # read_hst warns once per file
        return 1.0, None, False
    unit = parse_bunit(str(bunit))
    if unit is None:
        raise ValueError(f"{path!r} {where}: BUNIT {bunit!r} cannot be converted to electrons "
                         f"(expected {UNIT_HELP})")
    reader = None if instrument is None else instrument.reader
    factor, g, from_spec = 1.0, None, False
    if unit.rate:
        keyword = "EXPTIME" if reader is None else reader.exptime_keyword
        t = exptime_s if exptime_s is not None else header_number(headers, (keyword,))
        if t is None or not np.isfinite(t) or t <= 0:
            raise ValueError(f"{path!r} {where}: BUNIT {bunit!r} is a rate but {keyword} is "
                             f"{'missing' if t is None else t}; pass exptime_s= (--exptime)")
        factor *= t
    if unit.counts:
        keywords = GAIN_KEYWORDS if reader is None else reader.gain_keywords
        g = gain_e_per_adu if gain_e_per_adu is not None else header_number(headers, keywords)
        if g is None and instrument is not None:
            g, from_spec = instrument.detector.gain_e_per_adu, True
        if g is None or not np.isfinite(g) or g <= 0:
            raise ValueError(f"{path!r} {where}: BUNIT {bunit!r} is in counts but no gain "
                             f"({'/'.join(keywords)}) is in the header; pass gain_e_per_adu= "
                             "(--gain)")
        factor *= g
    return factor, g, from_spec


def check_unit_name(value, name):
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be a unit name such as 'ELECTRONS' or 'ADU', got {value!r}")
    return value


def check_optional_positive(value, name):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)
