"""One owner for "which model is this": loading (`load_model`), saving (`save`) and `resolve`.

* `load_model(spec)` reads a cosmiq_pyro checkpoint path, or a published name from `PUBLISHED`
  (``"ACS-WFC"``: deepCR's published ACS/WFC mask weights in the deterministic twin), or any other
  batch-norm mask model shipped with the ``deepCR`` package, into a `FitResult`.
* `save(path, model, guide, history)` writes a checkpoint (`cosmiq_pyro.io.checkpoint`).
* `resolve(model, guide)` turns whatever a caller passes (a `FitResult`, a plain net, a VI model
  with its guide, a ``(model, guide)`` pair) into ``(net, guide)``: ``(UNet2SigmoidVI, guide)`` or ``(UNet2Sigmoid, None)``.  Prediction, the
  study, the posterior summaries, the deepCR facade and the CLI all call it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..data.input_transform import STANDARDISE, adu_transform, check_input_transform
from ..instruments import get_instrument, instrument_for_deepcr, list_instruments
from ..io.checkpoint import check_section, read_payload, write_payload
from .bayesian import UNet2SigmoidVI
from .defaults import AUTO
from .guides import locs_from_state, make_guide
from .results import FitResult
from .unet import UNet2Sigmoid, deepcr_weights_file
from .weight_norm import STANDARDISED, unet_from_weight_norm

__all__ = ["load_model", "save", "resolve", "build_model", "PUBLISHED", "PUBLISHED_DIR", "published_by_camera"]

_KINDS = {"UNet2Sigmoid": UNet2Sigmoid, "UNet2SigmoidVI": UNet2SigmoidVI}

#: Checkpoints shipped inside the package (referenced by name from `PUBLISHED`).
PUBLISHED_DIR = Path(__file__).parent / "published"


def _published_novelty(name: str) -> dict | None:
    """The novelty model of a published model that is not a cosmiq_pyro checkpoint (deepCR's
    weights), ``<name>.novelty.pt`` in `PUBLISHED_DIR` (a `NoveltyModel` state;
    benchmarks/novelty_study.py fits it), or None.  A checkpoint carries its own novelty model
    inside (its ``"novelty"`` section), so a copy of it loaded by path behaves as its name."""
    path = PUBLISHED_DIR / f"{name}.novelty.pt"
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=True)
    check_section("novelty", state, repr(str(path)))
    return state


def _deepcr(name: str) -> Callable[[], FitResult]:
    def loader() -> FitResult:
        if name in STANDARDISED:  # weight-norm convolutions, standardised frames (deepCR's norm)
            net, path = unet_from_weight_norm(name)
            return FitResult(model=net, weights_file=path, novelty=_published_novelty(name),
                             input_transform=dict(STANDARDISE))
        return FitResult(model=UNet2Sigmoid.from_deepcr(name), weights_file=deepcr_weights_file(name),
                         novelty=_published_novelty(name), input_transform=_deepcr_input_transform(name))

    loader.__doc__ = f"deepCR's published {name!r} mask weights in the deterministic twin."
    return loader


def _deepcr_input_transform(name: str) -> dict | None:
    """A deepCR model that takes ADU (its camera's spec, `instruments.instrument_for_deepcr`:
    ``deepcr_input_unit = "ADU"``, e.g. ``decam``) gets electrons divided by the spec's gain."""
    spec = instrument_for_deepcr(name)
    if spec is not None and (spec.models.deepcr_input_unit or "").upper() == "ADU":
        return adu_transform(spec.detector.gain_e_per_adu)
    return None


def published_by_camera() -> dict[str, str]:
    """``{published model name: camera}``: the model each shipped camera spec names in its
    ``[models] published`` (e.g. ``{"ACS-WFC-VI": "ACS-WFC", ...}``), in the order of
    `instruments.list_instruments`.  The spec names the model; its checkpoint is
    ``PUBLISHED_DIR / "<name>.pth"``."""
    named = {}
    for camera in list_instruments():
        model = get_instrument(camera).models.published
        if model is not None:
            named.setdefault(model, camera)
    return named


#: Published models by name: a loader ``() -> FitResult``, or the file name of a checkpoint
#: inside `PUBLISHED_DIR`.  deepCR's ACS/WFC weights, then the Bayesian model each camera spec
#: names (``[models] published``: ACS-WFC-VI, trained by benchmarks/train_published.py;
#: WFC3-UVIS-VI and DECam-VI, made by `cosmiq_pyro.adapt` from ACS-WFC-VI and deepCR's decam; each
#: with its recipe and log beside it, ``<name>.json``, ``<name>.log``; docs/validation.md).  A
#: spec naming a model whose file is missing is an error when the model is loaded
#: (`load_model`), never skipped.
PUBLISHED: dict[str, Callable[[], FitResult] | str] = {
    "ACS-WFC": _deepcr("ACS-WFC"),
    **{name: f"{name}.pth" for name in published_by_camera()},
}


def _looks_like_path(spec: str) -> bool:
    """A checkpoint path (exists, has a directory part or a file suffix) vs a model name."""
    return os.path.exists(spec) or os.sep in spec or bool(os.path.splitext(spec)[1])


def load_model(spec, device=None, *, model: nn.Module | None = None) -> FitResult:
    """A model by checkpoint path or published name, as a `FitResult` (model in eval mode).

    Parameters
    ----------
    spec : str or os.PathLike
        A cosmiq_pyro checkpoint (``.pth`` from `save`, ``fit_*(checkpoint=...)`` or the
        ``train`` facade), a name in `PUBLISHED` (e.g. ``"ACS-WFC"``, ``"ACS-WFC-VI"``,
        ``"DECam-VI"``), or another batch-norm mask model shipped with the ``deepCR`` package
        (e.g. ``"decam"``).  ``"auto"`` is not a model (the entry points choose one per frame):
        a ValueError.
    device : str or torch.device, optional
        Where to put the model (default CPU).
    model : UNet2Sigmoid or UNet2SigmoidVI, optional
        Checkpoints only: load into this model; its architecture must equal the checkpoint's,
        else a ValueError names every mismatching setting.

    Returns
    -------
    FitResult
        ``weights_file`` is the file the weights came from.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model spec must be a checkpoint path or a published model name, got {type(spec).__name__}")
    text = os.fspath(spec)
    if not isinstance(spec, os.PathLike) and text in PUBLISHED:
        entry = PUBLISHED[text]
        if isinstance(entry, str):
            result = _load_checkpoint(_published_file(text, entry), model)
        else:
            if model is not None:
                raise ValueError(f"model= applies to checkpoints, not to the published model {text!r}")
            result = entry()
    elif isinstance(spec, os.PathLike) or _looks_like_path(text):
        result = _load_checkpoint(Path(text), model)
    elif text == AUTO:
        raise ValueError(f"model {AUTO!r} is chosen per frame (by cosmiq predict, predict_many and cosmicray_cosmiq, "
                         f"cosmiq_pyro.app.automodel), not loaded; published: {', '.join(PUBLISHED)}; "
                         "or give a checkpoint path")
    else:
        if model is not None:
            raise ValueError(f"model= applies to checkpoints, not to the deepCR model {text!r}")
        try:
            result = _deepcr(text)()
        except ValueError as err:
            raise ValueError(f"{err}; published: {', '.join(PUBLISHED)}; or give a checkpoint path") from None
    if device is not None:
        result.model.to(device)
        if result.guide is not None:
            result.guide.to(device)
    return result


def _published_file(name: str, entry: str) -> Path:
    """The checkpoint of published model ``name``; a FileNotFoundError naming the spec that
    names it when the file is missing (an incomplete installation or checkout)."""
    path = PUBLISHED_DIR / entry
    if not path.is_file():
        camera = published_by_camera().get(name)
        by = f" (named by the {camera} spec's [models] published)" if camera else ""
        raise FileNotFoundError(f"published model {name!r}{by} has no checkpoint {entry} in {str(PUBLISHED_DIR)!r}: "
                                "the installation is incomplete")
    return path


def build_model(config: dict) -> UNet2Sigmoid:
    """A fresh model from a checkpoint ``config`` (``{"kind": ..., **constructor arguments}``)."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(_KINDS)}")
    return _KINDS[kind](**config)


#: Largest architecture settings a checkpoint's config may ask for, checked before any layer is
#: built: a few-kB file saying ``hidden=20000`` would otherwise allocate tens of GB.  hidden=1024
#: (32 times deepCR's 32) builds ~0.3 GB of weights.
CONFIG_LIMITS = {"hidden": 1024, "n_channels": 64, "n_classes": 64}


def _check_config_limits(path: Path, config: dict) -> None:
    for key, limit in CONFIG_LIMITS.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ValueError(f"{str(path)!r}: config {key}={value!r} is outside this package's limits "
                             f"(an int in [1, {limit}]); the file is not a checkpoint this package wrote")


def _load_checkpoint(path: Path, model) -> FitResult:
    payload = read_payload(path)
    config = payload["config"]
    _check_config_limits(path, config)
    if model is None:
        try:
            model = build_model(config)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{str(path)!r}: {err}") from None
    else:
        _check_same_architecture(path, config, model)
    try:
        model.load_state_dict(payload["net_state"])
    except RuntimeError as err:
        raise ValueError(f"{str(path)!r} does not fit {type(model).__name__}({_describe(model.config)}): {err}") from None
    guide = None
    if payload["guide_state"] is None and isinstance(model, UNet2SigmoidVI):
        raise ValueError(f"{str(path)!r} holds a UNet2SigmoidVI without its guide (guide_state is None): "
                         "the weights of a Bayesian model live in its guide; the checkpoint is incomplete")
    if payload["guide_state"] is not None:
        if not isinstance(model, UNet2SigmoidVI):
            raise ValueError(f"{str(path)!r} holds a guide but its model is {type(model).__name__}")
        state = payload["guide_state"]
        try:
            guide = make_guide(model, locs_from_state(state, model.weight_sites))
            guide.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as err:
            raise ValueError(f"{str(path)!r} holds an incomplete or mismatched guide: "
                             f"{' '.join(str(err).split())[:300]}") from None
    sections = dict(payload["sections"])
    try:
        transform = check_input_transform(sections.pop("input_transform", None))
    except ValueError as err:
        raise ValueError(f"{str(path)!r}: {err}") from None
    card = sections.pop("card", None)
    if card is not None and not isinstance(card, dict):
        raise ValueError(f"{str(path)!r}: the card section must be a dict, got {type(card).__name__}")
    return FitResult(model=model.eval(), guide=guide, history=payload.get("history", {}), weights_file=path,
                     novelty=sections.pop("novelty", None), temperature=payload["temperature"], card=card,
                     input_transform=transform, sections=sections)


def save(path, model, guide=None, history=None) -> Path:
    """Write ``model`` (a net, a VI model or a `FitResult`) with its guide, history, and for a
    `FitResult` its novelty model (``.novelty``, stored as the ``"novelty"`` section), model card
    (``.card``: ``"card"``), input transform (``.input_transform``: ``"input_transform"``), other
    sections (``.sections``) and logit temperature (``.temperature``; 1 otherwise) to ``path``.

    Returns the path.  The file is complete or absent (`cosmiq_pyro.io.checkpoint`).
    """
    sections, temperature = {}, 1.0
    if isinstance(model, FitResult):
        temperature, sections, novelty = model.temperature, dict(model.sections), model.novelty
        for name, value in (("card", model.card), ("input_transform", check_input_transform(model.input_transform))):
            if value is not None:
                sections[name] = value
        model, guide, history = model.model, guide or model.guide, history or model.history
        if hasattr(novelty, "state_dict"):  # a NoveltyModel: stored as its tensors and plain Python
            novelty = novelty.state_dict()
        if novelty is not None:
            sections["novelty"] = novelty
    net, guide = resolve(model, guide)
    return write_payload(path, net.config, net.state_dict(), None if guide is None else guide.state_dict(),
                         history, sections=sections, temperature=temperature)


def resolve(model, guide=None) -> tuple[UNet2Sigmoid, nn.Module | None]:
    """The net and guide behind ``model``: ``(UNet2SigmoidVI, guide)`` or ``(UNet2Sigmoid, None)``.

    Parameters
    ----------
    model : FitResult, UNet2SigmoidVI, UNet2Sigmoid or (UNet2SigmoidVI, guide)
        A `FitResult` supplies its own guide unless ``guide`` is given.  (Paths and published
        names are `load_model`'s: a string here is a TypeError.)
    guide : callable, optional
        The variational guide of a `UNet2SigmoidVI`.

    Raises
    ------
    ValueError
        A Bayesian model without a guide, or a guide given with a deterministic net.
    TypeError
        Anything else as ``model``.
    """
    if isinstance(model, tuple) and len(model) == 2 and guide is None:
        model, guide = model
    if isinstance(model, FitResult):
        model, guide = model.model, guide if guide is not None else model.guide
    if isinstance(model, UNet2SigmoidVI):
        if guide is None:
            raise ValueError("a UNet2SigmoidVI needs its guide (the weights live in the guide): "
                             "pass guide=... or the FitResult")
        return model, guide
    if isinstance(model, UNet2Sigmoid):
        if guide is not None:
            raise ValueError("guide was given for a deterministic UNet2Sigmoid; it has no weight posterior")
        return model, None
    hint = " (load a checkpoint or published model with load_model first)" if isinstance(model, (str, os.PathLike)) else ""
    raise TypeError(f"model must be a UNet2Sigmoid, UNet2SigmoidVI or FitResult, got {type(model).__name__}{hint}")


def _describe(config: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items() if k != "kind")


def _check_same_architecture(path, saved: dict, model) -> None:
    if not isinstance(model, UNet2Sigmoid):
        raise TypeError(f"model must be a UNet2Sigmoid or UNet2SigmoidVI, got {type(model).__name__}")
    ours = model.config
    saved = dict(saved)
    if "prior_scale" in saved and "prior" in ours:  # checkpoints written before prior objects
        saved["prior"] = {"kind": "IIDNormalPrior", "scale": float(saved.pop("prior_scale"))}
    diffs = [f"{key}: checkpoint {saved.get(key)!r}, model {ours.get(key)!r}"
             for key in sorted(set(saved) | set(ours)) if saved.get(key) != ours.get(key)]
    if diffs:
        raise ValueError(f"checkpoint {str(path)!r} does not match the model's architecture: " + "; ".join(diffs))
