"""Inputs: deepCR pair files and simulated frames as torch datasets (`datasets`), deepCR's
dark-frame mixes (`dark_mix`), and the
simulator of a camera spec (`simulate`, no torch; ACS/WFC by default, WFC3/UVIS, DECam).

The dataset names are imported lazily so that ``import cosmiq_pyro.data.simulate`` does not
import torch.
"""
from importlib import import_module

_EXPORTS = {name: "datasets" for name in ("PairDataset", "SimulatedDataset", "as_dataset", "split_indices")}
_EXPORTS["DarkMixDataset"] = "dark_mix"
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
