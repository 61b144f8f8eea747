"""Names that moved: a module-level ``__getattr__`` that still answers them for one release.

A module whose public name moved keeps answering the old name, with a `DeprecationWarning`
that names the new home (PEP 562 module ``__getattr__``, as photutils and Pyro do)::

    __getattr__ = moved_names(__name__, {"old_name": ("cosmiq_pyro.new.module", "new_name")})

The old name is not in the module's ``__all__`` and not in the API reference.
"""
from __future__ import annotations

import warnings
from importlib import import_module

__all__ = ["moved_names"]


def moved_names(module: str, moved: dict):
    """A module ``__getattr__`` that resolves the names in ``moved`` with a DeprecationWarning.

    Parameters
    ----------
    module : str
        The ``__name__`` of the module the names were removed from.
    moved : dict
        ``{old name: (module that defines it now, name there)}``.

    Returns
    -------
    callable
        ``__getattr__(name)``: the object the new home defines, after warning; an
        `AttributeError` for any other name.
    """
    moved = dict(moved)

    def __getattr__(name):
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, new = moved[name]
        warnings.warn(f"{module}.{name} is deprecated and will be removed in the next release: "
                      f"use {where}.{new}", DeprecationWarning, stacklevel=2)
        return getattr(import_module(where), new)

    return __getattr__
