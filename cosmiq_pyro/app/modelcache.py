"""Models loaded once per process: the default model and a cache keyed by spec, device and SHA-256.

`predict_many` runs many frames in each Dask worker process and `cosmicray_cosmiq` may be
called once per frame in a loop; both get their model from `cached_model`, which reads a
model file only the first time a process asks for it (and again only if the file's bytes
changed since: the cache key includes the file's SHA-256).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..io.digest import file_sha256
from ..models.defaults import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL", "LoadedModel", "cached_model", "cache_info"]

_MAX_MODELS = 4  # models kept per process (each ~0.5 MB of weights; a worker rarely needs two)
_CACHE: OrderedDict = OrderedDict()  # (spec, device) -> LoadedModel, least recently used first
_LOCK = threading.Lock()
_LOADS = 0  # model files read by this process


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model and the file it came from.

    Attributes
    ----------
    result : FitResult
        ``.model`` (eval mode) and ``.guide`` (None for a deterministic net).
    weights_file : pathlib.Path
        The checkpoint, or deepCR's ``.pth`` for a published name.
    sha256 : str
        SHA-256 of ``weights_file`` when it was read (64 hex digits).
    """

    result: object
    weights_file: Path
    sha256: str

    @property
    def bayesian(self) -> bool:
        return self.result.guide is not None


def cached_model(spec, device=None) -> LoadedModel:
    """The model named by ``spec``, read from disk only on this process's first request.

    Parameters
    ----------
    spec : str or os.PathLike
        A cosmiq_pyro checkpoint path or a published model name (e.g. `DEFAULT_MODEL`).
    device : str or torch.device, optional
        Where the model lives (default CPU); part of the cache key.

    Returns
    -------
    LoadedModel

    Raises
    ------
    TypeError, ValueError, FileNotFoundError
        As the loader: not a path or name, not a cosmiq_pyro checkpoint, no such file.

    Notes
    -----
    A cached entry is reused while its file's SHA-256 is unchanged (hashing a 0.4 MB
    checkpoint takes about a millisecond); a file rewritten in place is read again.
    """
    global _LOADS
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model must be a checkpoint path or a published model name, got {type(spec).__name__}")
    key = (_spec_key(spec), None if device is None else str(device))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit.weights_file.is_file() and file_sha256(hit.weights_file) == hit.sha256:
            _CACHE.move_to_end(key)
            return hit
        result, weights_file = _load(spec, device)
        loaded = LoadedModel(result=result, weights_file=Path(weights_file), sha256=file_sha256(weights_file))
        _LOADS += 1
        _CACHE[key] = loaded
        while len(_CACHE) > _MAX_MODELS:
            _CACHE.popitem(last=False)
        return loaded


def cache_info() -> dict:
    """``{"loads": model files read by this process, "cached": models held now}``."""
    with _LOCK:
        return {"loads": _LOADS, "cached": len(_CACHE)}


def _spec_key(spec) -> str:
    text = os.fspath(spec)
    return os.path.abspath(text) if os.path.exists(text) else text


def _load(spec, device):
    """(FitResult, weights file) by `models.registry.load_model`."""
    from ..models.registry import load_model

    result = load_model(spec, device=device)
    return result, result.weights_file
