"""The one-file checkpoint format: a payload of tensors and plain Python, written atomically.

A checkpoint is a single ``torch.save`` file that ``torch.load(path, weights_only=True)`` reads::

    {"format": "cosmiq_pyro", "version": 1, "package_version": "...",
     "config": {"kind": "UNet2Sigmoid" | "UNet2SigmoidVI", "hidden": 32, "norm": ...,
                "prior": {"kind": "IIDNormalPrior", "scale": 1.0}, ...},
     "net_state": {...},            # the net's state dict (for the VI model: norm layers, priors)
     "guide_state": {...} | None,   # the guide's state dict (None: deterministic twin)
     "history": {...},
     "temperature": 1.0,            # post-hoc logit temperature (inference.temperature); 1 if absent
     "novelty": {...},              # optional: inference.novelty.NoveltyModel.state_dict()
     "card": {...},                 # optional: the model card (plain Python; inference.adaptation)
     "input_transform": {...}}      # optional: what the image goes through before the net
                                    # (data.input_transform; e.g. {"kind": "standardise"})

This module knows only the payload (`write_payload`, `read_payload`: format and version checks,
``weights_only`` loading, atomic writes).  Turning a payload into a model and back is
`cosmiq_pyro.models.registry` (`save`, `load_model`).  Version 1 checkpoints written before the
prior objects existed carry ``"prior_scale"`` instead of ``"prior"`` in their config; both load.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path

import torch

from .._version import __version__
from .atomic import atomic_open

__all__ = ["FORMAT", "VERSION", "write_payload", "read_payload"]

FORMAT = "cosmiq_pyro"
VERSION = 1
_REQUIRED = ("config", "net_state", "guide_state")


def write_payload(path, config: dict, net_state: dict, guide_state: dict | None, history: dict | None,
                  novelty: dict | None = None, temperature: float = 1.0, *, card: dict | None = None,
                  input_transform: dict | None = None) -> Path:
    """Write one checkpoint file (complete or absent: a temporary beside ``path``, then renamed).

    States are copied to the CPU and detached; ``novelty`` (a novelty model's state, tensors and
    plain Python), ``card`` (the model card) and ``input_transform`` (plain Python) are stored
    when given.  Returns the path.
    """
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "package_version": __version__,
        "config": dict(config),
        "net_state": {k: v.detach().cpu() for k, v in net_state.items()},
        "guide_state": None if guide_state is None else {k: v.detach().cpu() for k, v in guide_state.items()},
        "history": history or {},
        "temperature": _temperature(path, temperature),
    }
    if novelty is not None:
        payload["novelty"] = novelty
    for key, value in (("card", card), ("input_transform", input_transform)):
        if value is not None:
            payload[key] = _plain(value, key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        torch.save(payload, fh)
    return path


def read_payload(path) -> dict:
    """The payload of the checkpoint ``path`` (read with ``weights_only=True`` onto the CPU).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a cosmiq_pyro checkpoint, a newer version than this package reads, incomplete, or
        holding NaN/inf weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors of torch.load
        raise ValueError(f"{str(path)!r} is not a cosmiq_pyro checkpoint ({err.__class__.__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a cosmiq_pyro checkpoint (no 'format': {FORMAT!r} entry)")
    if payload.get("version", 0) > VERSION:
        raise ValueError(f"{str(path)!r} has checkpoint version {payload['version']}; this cosmiq_pyro reads <= {VERSION}")
    payload["temperature"] = _temperature(path, payload.get("temperature", 1.0))
    missing = [k for k in _REQUIRED if k not in payload]
    if missing or not isinstance(payload["config"], dict) or "kind" not in payload["config"]:
        raise ValueError(f"{str(path)!r} is an incomplete cosmiq_pyro checkpoint (missing {missing or ['config.kind']})")
    for key in ("card", "input_transform"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise ValueError(f"{str(path)!r}: {key} must be a dict, got {type(payload[key]).__name__}")
    _check_finite(path, payload)
    return payload


def _plain(value, where: str):
    """``value`` as plain Python (dicts with str keys, lists, str, int, float, bool, None), tuples
    turned into lists, so that ``torch.load(weights_only=True)`` reads it; else a TypeError."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):  # str subclasses (e.g. torch.__version__) as plain str
        return str(value)
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where}: keys must be str, got {bad[0]!r}")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where} must hold plain Python (dict, list, str, int, float, bool, None), "
                    f"got {type(value).__name__}")


def _check_finite(path: Path, payload: dict) -> None:
    """Refuse NaN/inf weights: they would pass through prediction as zeros or give all-NaN maps."""
    for part in ("net_state", "guide_state"):
        state = payload[part]
        if state is None:
            continue
        if not isinstance(state, dict):
            raise ValueError(f"{str(path)!r} is an incomplete cosmiq_pyro checkpoint ({part} is not a state dict)")
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                bad = int((~torch.isfinite(value)).sum())
                raise ValueError(f"{str(path)!r} holds {bad} non-finite value(s) in {part}[{key!r}]; "
                                 "the checkpoint is corrupt or comes from a diverged fit")


def _temperature(path, value) -> float:
    """The logit temperature as a float, or a ValueError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{str(path)!r}: temperature must be a finite number > 0, got {value!r}")
    return float(value)
