"""Parameter ownership without process-wide Pyro settings.

Pyro's ``module_local_params`` setting keeps a `PyroModule`'s parameters in the module instead of
Pyro's global param store (so two fitted models with the same parameter names can live in one
kernel).  Setting it globally would change every *user's* PyroModule too, so the package's own
modules switch it on only while they are built and called (`pyro.settings.context`): code that
runs our models keeps its own params in `pyro.get_param_store()` as usual.
"""
from __future__ import annotations

import pyro

__all__ = ["LocalParams", "local_params"]


def local_params():
    """Context manager: Pyro's module-local parameters for the calls inside it."""
    return pyro.settings.context(module_local_params=True)


class LocalParams:
    """Mixin for a `PyroModule` subclass: built and called with module-local parameters.

    Pyro decides where a PyroModule keeps its parameters when it is built, so both construction
    and every call run inside `local_params`.  List it before the PyroModule class.
    """

    def __init__(self, *args, **kwargs):
        with local_params():
            super().__init__(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        with local_params():
            return super().__call__(*args, **kwargs)
