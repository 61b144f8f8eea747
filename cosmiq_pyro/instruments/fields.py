"""Reading one table of a spec file with one-line errors that name the field.

A `SpecTable` wraps one TOML table (``[detector]``, ``[reader]``, ...) and hands out its
values already checked: numbers in the unit their key names (a plain number is taken in that
unit; a string such as ``"0.263 arcsec"`` or ``"15 micron"`` is converted with
`astropy.units`, and a unit of another kind is refused), ``[low, high]`` ranges, strings,
string lists and DQ bit lists.  `SpecTable.finish` refuses any key that nobody asked for, so a
misspelt field is an error rather than a silently ignored line.

Every error is a `ValueError` (or `TypeError` for a value of the wrong TOML type) whose one
line reads ``<spec>: [table] key: what was expected, got what``.
"""
from __future__ import annotations

import difflib
import math

from astropy import units as u

__all__ = ["SpecTable", "SpecError", "spec_error"]


class SpecError(ValueError):
    """A spec file that cannot describe a camera (a `ValueError`, one line naming the field)."""


def spec_error(origin, where, message, kind=SpecError):
    """The one-line error ``<origin>: [where]: message`` (``kind``: SpecError or TypeError)."""
    return kind(f"instrument spec {origin}: {where}: {message}")


class SpecTable:
    """One table of a spec: typed, unit-checked access to its keys.

    Parameters
    ----------
    data : dict
        The table as `tomllib` parsed it.
    origin : str
        The spec's name or path (first word of every error).
    where : str
        The table's name as written in the file (``"[detector]"``; ``""`` for the top level).
    """

    def __init__(self, data, origin: str, where: str):
        if not isinstance(data, dict):
            raise spec_error(origin, where, f"must be a table, got {_type(data)}", TypeError)
        self.data, self.origin, self.where = data, origin, where
        self._used: set[str] = set()

    # ------------------------------------------------------------------ plumbing

    def error(self, key, message, kind=SpecError):
        return spec_error(self.origin, f"{self.where} {key}".strip(), message, kind)

    def _get(self, key, required):
        self._used.add(key)
        if key not in self.data:
            if required:
                near = difflib.get_close_matches(key, [k for k in self.data if isinstance(k, str)], n=1)
                hint = f"; found {near[0]!r}: name the unit as in {key!r}" if near else ""
                raise self.error(key, f"missing (a required field){hint}")
            return None
        return self.data[key]

    def has(self, key) -> bool:
        return key in self.data

    def table(self, key, required=True):
        """A nested table as a `SpecTable` (None when absent and not required)."""
        value = self._get(key, required)
        if value is None:
            return None
        parent = self.where.strip("[]")
        return SpecTable(value, self.origin, f"[{parent}.{key}]" if parent else f"[{key}]")

    def finish(self):
        """Refuse keys that were never read (misspelt or unknown fields)."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise spec_error(self.origin, f"{self.where} {unknown[0]}".strip(),
                             f"unknown field (known: {', '.join(sorted(self._used))})")

    # ------------------------------------------------------------------ values

    def string(self, key, required=True, choices=None):
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}", TypeError)
        if choices is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value.strip()

    def strings(self, key, required=True):
        """A string or a list of strings -> tuple of stripped strings (at least one)."""
        value = self._get(key, required)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or \
                not all(isinstance(s, str) and s.strip() for s in items):
            raise self.error(key, f"must be a string or a non-empty list of strings, got {value!r}",
                             TypeError)
        return tuple(s.strip() for s in items)

    def integer(self, key, required=True, minimum=None):
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}", TypeError)
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def integers(self, key, count, required=True, minimum=None):
        """A list of ``count`` integers (each >= ``minimum``) -> tuple."""
        value = self._get(key, required)
        if value is None:
            return None
        if not (isinstance(value, list) and len(value) == count and
                all(isinstance(n, int) and not isinstance(n, bool) for n in value)):
            raise self.error(key, f"must be a list of {count} integers, got {value!r}", TypeError)
        if minimum is not None and min(value) < minimum:
            raise self.error(key, f"every value must be >= {minimum}, got {value!r}")
        return tuple(value)

    def bits(self, key, required=True):
        """A list of DQ bit values (each a power of two) -> their OR as an int (0 for [])."""
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(b, int) and not isinstance(b, bool)
                                                  for b in value):
            raise self.error(key, f"must be a list of DQ bit values such as [1, 2, 4], got {value!r}",
                             TypeError)
        mask = 0
        for b in value:
            if b <= 0 or b & (b - 1):
                raise self.error(key, f"{b} is not a single DQ bit (a power of two: 1, 2, 4, ...)")
            mask |= b
        return mask

    def quantity(self, key, unit, required=True, positive=True, allow_zero=False):
        """A number in ``unit`` (a plain number is taken in it; ``"<value> <unit>"`` is converted)."""
        value = self._get(key, required)
        if value is None:
            return None
        return self._one_quantity(key, value, unit, positive, allow_zero)

    def quantity_range(self, key, unit, required=True, positive=True, allow_zero=False):
        """``[low, high]`` (or one value for both) in ``unit`` -> ``(low, high)`` floats, low <= high."""
        value = self._get(key, required)
        if value is None:
            return None
        items = value if isinstance(value, list) else [value, value]
        if len(items) != 2:
            raise self.error(key, f"must be one value or a [low, high] pair in {unit}, got {value!r}")
        low, high = (self._one_quantity(key, v, unit, positive, allow_zero) for v in items)
        if low > high:
            raise self.error(key, f"low {low:g} is above high {high:g}")
        return (low, high)

    def _one_quantity(self, key, value, unit, positive, allow_zero):
        if isinstance(value, str):
            try:
                q = u.Quantity(value)
            except (TypeError, ValueError):
                raise self.error(key, f"{value!r} is not a number with a unit (e.g. '1.5 {unit}')") from None
            try:
                number = float(q.to_value(u.Unit(unit)))
            except u.UnitConversionError:
                raise self.error(key, f"{value!r} is not in a unit convertible to {unit}") from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            raise self.error(key, f"must be a number in {unit} (or a string such as '1.5 {unit}'), "
                             f"got {value!r}", TypeError)
        if not math.isfinite(number):
            raise self.error(key, f"must be finite, got {number}")
        if positive and (number < 0 or (number == 0 and not allow_zero)):
            bound = ">= 0" if allow_zero else "> 0"
            raise self.error(key, f"must be {bound} {unit}, got {number:g}")
        return number


def _type(value):
    return type(value).__name__
