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
from CCDGAIN, ATODGAIN or GAIN (the headers searched in order).
"""
from __future__ import annotations

import numpy as np

__all__ = ["GAIN_KEYWORDS", "electrons_per_unit", "header_number", "check_unit_name", "check_optional_positive"]

# BUNIT spellings found in HST and ground-based CCD headers.  astropy.units does not parse
# them reliably ("ELECTRONS" fails; "DN/S" parses as DN per siemens), hence this table.
_ELECTRON_NAMES = {"ELECTRONS", "ELECTRON", "E-", "E"}
_COUNT_NAMES = {"COUNTS", "COUNT", "CTS", "CT", "ADU", "ADUS", "DN"}
_SECOND_NAMES = {"S", "SEC", "SECOND", "SECONDS"}
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


def electrons_per_unit(bunit, headers, path, where, gain_e_per_adu, exptime_s):
    """(factor from the file's unit ``bunit`` to electrons, gain used or None): the module's formula.

    ``gain_e_per_adu`` and ``exptime_s`` override the headers' values; ``path`` and ``where``
    name the extension in errors.  ``bunit=None`` is read as electrons (factor 1).
    """
    if bunit is None:  # read_hst warns once per file
        return 1.0, None
    parts = str(bunit).strip().upper().replace(" ", "").split("/")
    numerator = parts[0]
    rate = len(parts) == 2 and parts[1] in _SECOND_NAMES
    if len(parts) > 2 or (len(parts) == 2 and not rate) or \
            numerator not in _ELECTRON_NAMES | _COUNT_NAMES:
        raise ValueError(f"{path!r} {where}: BUNIT {bunit!r} cannot be converted to electrons "
                         "(expected ELECTRONS, ELECTRONS/S, COUNTS or COUNTS/S)")
    factor, g = 1.0, None
    if rate:
        t = exptime_s if exptime_s is not None else header_number(headers, ("EXPTIME",))
        if t is None or not np.isfinite(t) or t <= 0:
            raise ValueError(f"{path!r} {where}: BUNIT {bunit!r} is a rate but EXPTIME is "
                             f"{'missing' if t is None else t}; pass exptime_s=")
        factor *= t
    if numerator in _COUNT_NAMES:
        g = gain_e_per_adu if gain_e_per_adu is not None else header_number(headers, GAIN_KEYWORDS)
        if g is None or not np.isfinite(g) or g <= 0:
            raise ValueError(f"{path!r} {where}: BUNIT {bunit!r} is in counts but no gain "
                             f"({'/'.join(GAIN_KEYWORDS)}) is in the header; pass gain_e_per_adu= "
                             "(--gain)")
        factor *= g
    return factor, g



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
