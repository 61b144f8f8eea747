"""Which model a frame gets: the rule behind ``model="auto"`` (`models.defaults.AUTO`, the default).

With ``"auto"``, per input file (or `~astropy.nddata.CCDData` frame):

1. **Its camera's model.**  A camera given by the caller (``instrument=``, ``--instrument``) or
   recognised from the primary header (`instruments.instrument_for_header`: the spec's
   ``[camera.match]`` keywords) whose spec names a published model (``[models] published``)
   gets that model.  Reason: ``header INSTRUME=DECam`` (the keywords the spec matches, with the
   header's values) or ``instrument=DECam given``.
2. **The least novel shipped model.**  Any other frame (a camera without spec, such as
   astroscrappy's GMOS-S frame; a spec without a model; no header at all) gets the candidate
   (`candidate_models`: every model a shipped spec names) with the lowest **novelty margin**

   .. math:: m_k = \\max_e \\left(\\nu_k(x_e) - \\tau_k\\right),

   the maximum over the file's science extensions ``e`` of model ``k``'s frame novelty
   ``nu_k`` (`inference.novelty`: 1 = the 95th percentile of ``k``'s held-out in-distribution
   frames) less ``k``'s own threshold ``tau_k`` (its stored false-alarm point: the 97.5th
   percentile of its calibration frames for the shipped models).  The raw
   novelties are already in units of each model's calibration spread; subtracting each
   model's threshold makes ``m_k = 0`` the same event for every model (``k`` starts to flag
   the frame), so ``m_k > 0`` exactly when ``k`` calls the frame novel.  Ties go to the first
   candidate.  Reason: ``lowest novelty of 3 models; camera GMOS-S has no model`` (N counts the
   candidates that scored the frame).  A frame smaller than one novelty block (64 x 64 px) has
   no novelty: it gets the first candidate (``ACS-WFC-VI``) and the reason says so.
3. A frame every candidate finds novel (every ``m_k > 0``) still gets the lowest; its product
   carries the novelty warning (``CQISNOV = T``) as any other novel frame's does.

An explicit model (a published name or a checkpoint path) is used as given (reason ``given``).
Models are read once per process (`modelcache.cached_model`); the novelty rule costs one
encoder pass (`inference.novelty.image_novelty`, posterior-mean weights) per candidate and
extension, measured in docs/defaults.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..inference.novelty import NoveltyModel, image_novelty
from ..inference.predictive import validated_image
from ..instruments import get_instrument, instrument_for_header
from ..instruments.schema import MATCH_KEYWORDS
from ..models.defaults import AUTO
from ..models.registry import PUBLISHED, published_by_camera
from .modelcache import LoadedModel, cached_model

__all__ = ["AUTO", "ModelChoice", "is_auto", "candidate_models", "given_model", "camera_choice",
           "novelty_choice", "choose_model", "novelty_margin"]


@dataclass(frozen=True)
class ModelChoice:
    """The model a frame is predicted with, and why.

    Attributes
    ----------
    requested : str
        The model as asked for: ``"auto"``, a published name or a checkpoint path.
    name : str
        The model used: its published name (``"DECam-VI"``), or a checkpoint's file name.
    reason : str
        Why: ``"given"``, ``"header INSTRUME=DECam"``, ``"instrument=DECam given"``,
        ``"lowest novelty of 3 models; camera GMOS-S has no model"``.
    loaded : LoadedModel
        The model (`modelcache.cached_model`): ``.result``, ``.weights_file``, ``.sha256``.
    margins : tuple of (str, float)
        The novelty rule's margins ``m_k`` per candidate, in candidate order (NaN where a
        candidate gives no score; empty for the other rules).
    """

    requested: str
    name: str
    reason: str
    loaded: LoadedModel
    margins: tuple = ()

    @property
    def result(self):
        return self.loaded.result

    @property
    def weights_file(self) -> Path:
        return self.loaded.weights_file

    @property
    def sha256(self) -> str:
        return self.loaded.sha256

    @property
    def bayesian(self) -> bool:
        return self.loaded.bayesian

    def describe(self) -> str:
        """``"DECam-VI (header INSTRUME=DECam)"``: the model and why, for summary lines."""
        return f"{self.name} ({self.reason})"


def is_auto(model) -> bool:
    """Whether ``model`` asks for the per-frame choice (the string `AUTO`, ``"auto"``)."""
    return isinstance(model, str) and model == AUTO


def candidate_models() -> tuple:
    """The models the novelty rule chooses among: every published model a shipped camera spec
    names (`models.registry.published_by_camera`), in the order of the specs' names."""
    return tuple(published_by_camera())


def given_model(model, device=None) -> ModelChoice:
    """The choice of an explicit ``model`` (a published name or a checkpoint path): itself."""
    loaded = cached_model(model, device)
    text = os.fspath(model)
    name = text if isinstance(model, str) and text in PUBLISHED else os.path.basename(loaded.weights_file)
    return ModelChoice(requested=text, name=name, reason="given", loaded=loaded)


def _lookup(header):
    """``keyword -> str value or None`` over a header, a mapping or a sequence of them."""
    headers = () if header is None else (header,) if hasattr(header, "get") else tuple(header)

    def lookup(key):
        for h in headers:
            value = h.get(key)
            if value is not None and str(value).strip():
                return str(value).strip()
        return None

    return lookup


def _spec_model(spec) -> str | None:
    """The published model ``spec`` names, checked against the registry, or None."""
    name = spec.models.published
    if name is not None and name not in PUBLISHED:
        raise ValueError(f"camera spec {spec.name!r} names published model {name!r}, which is not one "
                         f"(published: {', '.join(PUBLISHED)})")
    return name


def camera_choice(header=None, *, instrument=None, device=None) -> ModelChoice | None:
    """Rule 1: the model of the camera given or recognised from ``header``, or None.

    Parameters
    ----------
    header : astropy.io.fits.Header, mapping, or sequence of them, optional
        The primary header (what `io.fitsio.read_hst` recognises the camera from).
    instrument : str, os.PathLike or Instrument, optional
        A camera spec given by the caller: it decides instead of the header.
    device : optional
        Where the model lives (`modelcache.cached_model`).

    Returns
    -------
    ModelChoice or None
        None when the camera is unknown or its spec names no model (the novelty rule decides).

    Raises
    ------
    ValueError
        A spec naming a model that is not published; a header matching two specs equally.
    FileNotFoundError
        The named model's checkpoint is missing (`models.registry.load_model`).
    """
    if instrument is not None:
        spec = get_instrument(instrument)
        reason = f"instrument={spec.name} given"
    else:
        spec = None if header is None else instrument_for_header(header)
        if spec is None:
            return None
        lookup = _lookup(header)
        keys = [key for key in MATCH_KEYWORDS if getattr(spec.match, key.lower())]
        reason = "header " + " ".join(f"{key}={lookup(key)}" for key in keys)
    name = _spec_model(spec)
    if name is None:
        return None
    return ModelChoice(requested=AUTO, name=name, reason=reason, loaded=cached_model(name, device))


def _why_no_camera_model(header, instrument) -> str:
    """The second half of the novelty rule's reason: which camera had no model."""
    if instrument is not None:
        return f"camera {get_instrument(instrument).name} has no model"
    if header is None:
        return "no header"
    spec = instrument_for_header(header)
    if spec is not None:
        return f"camera {spec.name} has no model"
    camera = _lookup(header)("INSTRUME")
    return "no camera in the header" if camera is None else f"camera {camera} has no model"


_NOVELTY: dict = {}  # model SHA-256 -> its NoveltyModel (built once per process)


def _novelty_model(loaded: LoadedModel) -> NoveltyModel | None:
    state = loaded.result.novelty
    if state is None or isinstance(state, NoveltyModel):
        return state
    if loaded.sha256 not in _NOVELTY:
        _NOVELTY[loaded.sha256] = NoveltyModel.from_state_dict(state)
    return _NOVELTY[loaded.sha256]


def novelty_margin(loaded: LoadedModel, images) -> float | None:
    """``m = max_e (novelty(x_e) - threshold)`` of one model over a file's images, or None when
    the model has no novelty model or an image is smaller than one novelty block.

    ``images``: ``(image, ignore)`` pairs, electrons and bool (ignore may be None); the score is
    `predict`'s (`image_novelty` on `validated_image`'s output, ignored pixels left out).
    """
    novelty = _novelty_model(loaded)
    if novelty is None:
        return None
    margins = []
    for image, ignore in images:
        x = validated_image(image, ignore)
        if novelty.too_small(x.shape):
            return None
        score = image_novelty(loaded.result, x, novelty=novelty, ignore=ignore).score
        margins.append(score - novelty.threshold)
    return max(margins) if margins else None


def novelty_choice(images, *, header=None, instrument=None, candidates: Sequence | None = None,
                   device=None) -> ModelChoice:
    """Rule 2: the candidate with the lowest novelty margin on ``images``.

    Parameters
    ----------
    images : sequence of (ndarray, ndarray or None)
        The file's science extensions as ``(image, ignore)``: (H, W) electrons and bool.
    header, instrument
        Only to say, in the reason, which camera had no model of its own.
    candidates : sequence of str or os.PathLike, optional
        Models to choose among (default `candidate_models`); the first wins ties and is the
        choice when no margin can be computed.  A candidate that cannot score the frame (no
        novelty model, a frame smaller than a novelty block, an input it refuses such as a flat
        frame for a standardised model) gets no margin and is not chosen unless none has one.
    device : optional
        Where the models live.

    Returns
    -------
    ModelChoice
        ``margins`` holds each candidate's margin (NaN where it has none).
    """
    names = candidate_models() if candidates is None else tuple(candidates)
    if not names:
        raise ValueError("no candidate model to choose from: no shipped camera spec names a published model")
    images = list(images)
    why = _why_no_camera_model(header, instrument)
    scored = []
    for name in names:
        loaded = cached_model(name, device)
        try:
            margin = novelty_margin(loaded, images)
        except ValueError:  # this model cannot take the frame (e.g. a flat frame, standardised input)
            margin = None
        scored.append((name, loaded, np.nan if margin is None else float(margin)))
    margins = tuple((os.fspath(name), margin) for name, _, margin in scored)
    finite = [i for i, (_, _, margin) in enumerate(scored) if np.isfinite(margin)]
    if finite:
        best = min(finite, key=lambda i: scored[i][2])  # the first of equal margins
        reason = f"lowest novelty of {len(finite)} model{'s' * (len(finite) != 1)}; {why}"
    else:
        best = 0
        reason = f"first shipped model, no novelty score; {why}"
    name, loaded, _ = scored[best]
    label = os.fspath(name) if isinstance(name, str) and name in PUBLISHED else os.path.basename(loaded.weights_file)
    return ModelChoice(requested=AUTO, name=label, reason=reason, loaded=loaded, margins=margins)


def choose_model(model, *, header=None, images=(), instrument=None, device=None) -> ModelChoice:
    """The model a frame gets (module docstring): ``model`` itself unless it is ``"auto"``.

    Parameters
    ----------
    model : str or os.PathLike
        ``"auto"``, a published model name or a checkpoint path.
    header : astropy.io.fits.Header, mapping, or sequence of them, optional
        The frame's primary header (``CCDData.meta``).
    images : sequence of (ndarray, ndarray or None) or callable
        The frame's science extensions ``(image, ignore)`` in electrons, or a function returning
        them (called only when the novelty rule decides).
    instrument : optional
        A camera spec given by the caller.
    device : optional

    Returns
    -------
    ModelChoice
    """
    if not is_auto(model):
        return given_model(model, device)
    choice = camera_choice(header, instrument=instrument, device=device)
    if choice is not None:
        return choice
    return novelty_choice(images() if callable(images) else images, header=header, instrument=instrument,
                          device=device)
