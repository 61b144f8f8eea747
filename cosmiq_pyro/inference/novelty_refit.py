"""Refit the novelty model of a trained checkpoint, leaving its weights bit for bit.

A model's novelty model (`novelty`) can be refitted after training -- when the way it is fitted
changes (issue 22: ignored pixels left out, a larger calibration set, another threshold
quantile) -- without retraining: `refit_novelty` simulates the recipe's novelty frames of the
model's camera (`adaptation.recipe_novelty`, the same code `adapt` runs), fits, and rewrites
the checkpoint's ``"novelty"`` section (and its model card's record of it) with
`io.checkpoint.replace_sections`, atomically: the weights' digest
(`io.checkpoint.weights_sha256`) is checked to be unchanged before the file replaces anything.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..data.camera_sets import Camera, resolve_camera
from ..io.checkpoint import read_payload, replace_sections
from ..models.card import utc_now, versions
from ..models.registry import load_model
from .adaptation import ACS_WFC_VI, NOVELTY_KEYS, novelty_data, recipe_novelty, resolve_recipe

__all__ = ["checkpoint_recipe", "refit_novelty", "write_novelty"]


def checkpoint_recipe(result, instrument=None, novelty: dict | None = None) -> tuple[Camera, dict]:
    """The camera and the recipe a loaded model's novelty model is (re)fitted with.

    The frame keys (size, fields, filters, exposure times, label rule, CR rate multiplier) are
    those of the model card's recipe (a model made by `adapt`), else the camera spec's (the
    package recipe, `adaptation.ACS_WFC_VI`, for ACS-WFC); the novelty keys
    (`adaptation.NOVELTY_KEYS`) are the package recipe's today, overridden by ``novelty``.

    Parameters
    ----------
    result : FitResult
    instrument : str, os.PathLike or Instrument, optional
        The camera; required when the model has no card, else it must be the card's camera.
    novelty : dict, optional
        Novelty keys to override (e.g. ``{"novelty_false_alarm": 0.03}``).

    Raises
    ------
    ValueError
        No camera known, another camera than the card's, unknown novelty keys, or a model made
        from the user's own frames only (no simulated frames to refit on).
    """
    novelty = dict(novelty or {})
    unknown = sorted(set(novelty) - set(NOVELTY_KEYS))
    if unknown:
        raise ValueError(f"novelty: unknown key(s) {unknown}; known: {list(NOVELTY_KEYS)}")
    card = result.card or {}
    carded = (card.get("instrument") or {}).get("name")
    if instrument is None and carded is None:
        raise ValueError("instrument: the model has no model card naming its camera; give the camera "
                         "(e.g. 'ACS-WFC')")
    camera = resolve_camera(instrument if instrument is not None else _card_camera(card))
    if carded is not None and camera.name != carded:
        raise ValueError(f"instrument: the model card says {carded!r}, got {camera.name!r}")
    if card.get("recipe"):
        full = dict(card["recipe"])
        if (card.get("data") or {}).get("user") is not None or not full.get("n_train"):
            raise ValueError("the model was trained on the user's own frames, which a refit cannot simulate; "
                             "run adapt again with the same images and darks")
    else:
        name = Path(os.fspath(result.weights_file or "model.pth")).with_suffix(".pth")
        full = resolve_recipe(camera, ACS_WFC_VI["base"], name, None)
    full.update({k: ACS_WFC_VI[k] for k in NOVELTY_KEYS})
    full.update(novelty)
    return camera, resolve_recipe(camera, full["base"], Path(f"{full['name']}.pth"),
                                  {k: v for k, v in full.items() if k not in ("name", "base")})


def _card_camera(card: dict):
    """The card's camera: the shipped spec's name, or the path of the spec it was made with."""
    instrument = card["instrument"]
    return instrument["name"] if instrument.get("source") in (None, "package") else instrument["source"]


def refit_novelty(checkpoint, out=None, *, instrument=None, novelty: dict | None = None,
                  progress: bool = False) -> dict:
    """Refit a checkpoint's novelty model and write the checkpoint with the weights unchanged.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        A cosmiq_pyro checkpoint (``.pth``).
    out : str or os.PathLike, optional
        Where to write (default: ``checkpoint`` itself, replaced atomically).
    instrument, novelty
        As in `checkpoint_recipe`.
    progress : bool
        tqdm bars over the simulated frames.

    Returns
    -------
    dict
        ``path`` written, ``camera``, ``threshold_before`` / ``threshold`` (None: none before),
        ``weights_sha256`` (the same before and after), the novelty keys used and ``refitted_utc``.

    Raises
    ------
    RuntimeError
        The written file's weights differ from the input's (then nothing is replaced).
    """
    checkpoint = Path(checkpoint)
    if out is not None and Path(out).suffix != ".pth":
        raise ValueError(f"out must name a .pth file, got {str(out)!r}")
    result = load_model(checkpoint)
    camera, full = checkpoint_recipe(result, instrument, novelty)
    state = recipe_novelty(result, camera, full, None, progress)
    return write_novelty(checkpoint, state, camera, full, out)


def write_novelty(checkpoint, state: dict, camera: Camera, full: dict, out=None) -> dict:
    """Write ``checkpoint`` with the novelty model ``state`` (fitted with the recipe ``full`` on
    ``camera``'s frames, `checkpoint_recipe`) and its card's record of it, weights unchanged.

    Returns and raises as `refit_novelty`.
    """
    checkpoint = Path(checkpoint)
    out = checkpoint if out is None else Path(out)
    before = read_payload(checkpoint)
    card, old = before["sections"].get("card"), before["sections"].get("novelty")
    when = utc_now()
    sections = {"novelty": state}
    if card is not None:
        card = dict(card)
        card["recipe"] = {**card["recipe"], **{k: full[k] for k in NOVELTY_KEYS}}
        card["data"] = {**card["data"], "novelty": {**novelty_data(full), "refitted_utc": when,
                                                    "refitted_by": "cosmiq_pyro.inference.novelty_refit",
                                                    "git_commit": versions()["git_commit"]}}
        card["validation"] = {**card["validation"], "novelty_threshold": state["threshold"]}
        sections["card"] = card
    digest = replace_sections(checkpoint, sections, out)
    return {"path": str(out), "camera": camera.name,
            "threshold_before": None if old is None else float(old["threshold"]),
            "threshold": float(state["threshold"]), "weights_sha256": digest,
            **{k: full[k] for k in NOVELTY_KEYS}, "refitted_utc": when}
