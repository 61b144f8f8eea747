"""`FitResult` (a fitted model bundle) and its one-file checkpoint format.

A checkpoint is a single ``torch.save`` file holding only tensors and plain Python, so that
``torch.load(path, weights_only=True)`` reads it::

    {"format": "cosmiq_pyro", "version": 1, "package_version": "...",
     "config": {"kind": "UNet2Sigmoid" | "UNet2SigmoidVI", "hidden": 32, "norm": ..., ...},
     "net_state": {...},            # the net's state dict (for the VI model: norm layers, priors)
     "guide_state": {...} | None,   # AutoNormal state: "locs.<site>_unconstrained",
                                    #                   "scales.<site>_unconstrained" (softplus^-1)
     "history": {...}}

It is written to a temporary file in the target directory and renamed, so an interrupted save
never leaves a half-written checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._version import __version__
from .atomic import atomic_open
from ..models.bayesian import UNet2SigmoidVI, make_guide
from ..models.unet import UNet2Sigmoid

FORMAT = "cosmiq_pyro"
VERSION = 1
_KINDS = {"UNet2Sigmoid": UNet2Sigmoid, "UNet2SigmoidVI": UNet2SigmoidVI}


@dataclass
class FitResult:
    """A fitted model: what `fit_svi` / `fit_deterministic` return and `load` reads back.

    Attributes
    ----------
    model : UNet2Sigmoid or UNet2SigmoidVI
    guide : pyro.infer.autoguide.AutoNormal or None
        The variational posterior (None for the deterministic twin).
    history : dict
        ``"loss"``: per-step training loss; ``"epochs"``: one dict per epoch with
        ``train_loss``, ``val_loss``, ``val_tpr``, ``val_fpr`` (threshold 0.5, in %),
        ``lr``, ``seconds``; ``"best_epoch"`` when validation data were given.
    interrupted : bool
        True when training stopped on KeyboardInterrupt (the result holds the last good state).
    """

    model: nn.Module
    guide: nn.Module | None = None
    history: dict = field(default_factory=dict)
    interrupted: bool = False

    @property
    def bayesian(self) -> bool:
        return self.guide is not None


def save(path, model, guide=None, history=None) -> Path:
    """Write ``model`` (a net, a VI model or a `FitResult`) with its guide and history to ``path``.

    Returns the path.  The file is complete or absent: it is written to a temporary file
    beside ``path`` and renamed.
    """
    if isinstance(model, FitResult):
        model, guide, history = model.model, guide or model.guide, history or model.history
    if not isinstance(model, UNet2Sigmoid):
        raise TypeError(f"model must be a UNet2Sigmoid, UNet2SigmoidVI or FitResult, got {type(model).__name__}")
    if isinstance(model, UNet2SigmoidVI) and guide is None:
        raise ValueError("saving a UNet2SigmoidVI needs its guide (the weights live in the guide)")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "package_version": __version__,
        "config": model.config,
        "net_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "guide_state": None if guide is None else {k: v.detach().cpu() for k, v in guide.state_dict().items()},
        "history": history or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        torch.save(payload, fh)
    return path


def load(path, model: nn.Module | None = None, device=None) -> FitResult:
    """Read a checkpoint written by `save` into a `FitResult` that `predict` accepts.

    Parameters
    ----------
    path : str or Path
    model : UNet2Sigmoid or UNet2SigmoidVI, optional
        Load into this model; its architecture must equal the checkpoint's, else a ValueError
        names every mismatching setting.  By default a model is built from the checkpoint.
    device : str or torch.device, optional
        Where to put the model (default CPU).
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
    config = dict(payload["config"])
    kind = config.pop("kind")
    if kind not in _KINDS:
        raise ValueError(f"{str(path)!r}: unknown model kind {kind!r}")
    if model is None:
        model = _KINDS[kind](**config)
    else:
        _check_same_architecture(path, payload["config"], model)
    try:
        model.load_state_dict(payload["net_state"])
    except RuntimeError as err:
        raise ValueError(f"{str(path)!r} does not fit {type(model).__name__}({_describe(model.config)}): {err}") from None
    if device is not None:
        model.to(device)
    guide = None
    if payload["guide_state"] is not None:
        state = payload["guide_state"]
        locs = {s: state[f"locs.{s}_unconstrained"] for s in model.weight_sites}
        guide = make_guide(model, locs)
        guide.load_state_dict(state)
    return FitResult(model=model.eval(), guide=guide, history=payload.get("history", {}))


def _describe(config: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items() if k != "kind")


def _check_same_architecture(path, saved: dict, model) -> None:
    if not isinstance(model, UNet2Sigmoid):
        raise TypeError(f"model must be a UNet2Sigmoid or UNet2SigmoidVI, got {type(model).__name__}")
    ours = model.config
    diffs = [f"{key}: checkpoint {saved.get(key)!r}, model {ours.get(key)!r}"
             for key in sorted(set(saved) | set(ours)) if saved.get(key) != ours.get(key)]
    if diffs:
        raise ValueError(f"checkpoint {str(path)!r} does not match the model's architecture: " + "; ".join(diffs))
