"""The model card: how a checkpoint's model was made, stored inside the checkpoint (plain Python).

`cosmiq_pyro.adapt` writes one into every model it makes (`make_card`); `load_model` returns it as
``FitResult.card`` and ``print(result)`` shows it (`card_lines`).  Keys (version `CARD_VERSION`):

============== =====================================================================
key            value
============== =====================================================================
card_version   int
name           the model's name (the checkpoint's file stem)
made_by        the function that made it, e.g. ``"cosmiq_pyro.adapt"``
created_utc    ISO time of the last write
instrument     ``{"name", "source"}``: the camera spec and where it came from
start          ``{"model", "weights_file", "weights_file_sha256", "input_transform"}``: the
               starting model (its file's name and SHA-256; models made before 2026-12-07 08:00 UTC
               record the file's path and no digest)
recipe         every training value (`cosmiq_pyro.inference.adaptation.ACS_WFC_VI`)
data           what the training, validation and novelty frames were (counts, seeds, files)
training       ``{"epochs_done", "epochs", "best_epoch", "chunks": [...], "wall_seconds"}``
validation     per-epoch ``val_loss``, ``val_tpr``, ``val_fpr`` (%, threshold 0.5), the best
               epoch's, the fitted ``temperature`` and the novelty model's threshold
versions       cosmiq_pyro, torch, pyro, numpy, python, git commit (None outside a checkout)
machine        processor / platform of the last chunk
============== =====================================================================
"""
from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path

__all__ = ["CARD_VERSION", "versions", "machine", "utc_now", "card_lines"]

CARD_VERSION = 1


def versions() -> dict:
    """Versions of the package, its main dependencies and the git commit of the package source."""
    import numpy
    import pyro
    import torch

    from .._version import __version__

    return {"cosmiq_pyro": __version__, "torch": str(torch.__version__), "pyro": pyro.__version__,
            "numpy": numpy.__version__, "python": platform.python_version(), "git_commit": _git_commit()}


def machine() -> str:
    """The machine, in words: processor (or architecture), core count, OS."""
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _fmt(value, spec: str = ".4g") -> str:
    return "?" if value is None else format(value, spec)


def card_lines(card: dict) -> list[str]:
    """The card as a few readable lines (what ``print(cq.load(path))`` shows)."""
    get = card.get
    inst, start, train, val = get("instrument") or {}, get("start") or {}, get("training") or {}, get("validation") or {}
    recipe, data = get("recipe") or {}, get("data") or {}
    lines = [f"model card: {get('name', '?')} (made by {get('made_by', '?')}, {get('created_utc', '?')})",
             f"  camera: {inst.get('name', '?')} (spec: {inst.get('source', '?')}); "
             f"started from {start.get('model', '?')}"
             + ("" if not start.get("input_transform") else f" (input: {start['input_transform']['kind']})")]
    parts = []
    if data.get("simulated"):
        sim = data["simulated"]
        parts.append(f"{sim.get('n_train')} simulated training / {sim.get('n_val')} validation frames of "
                     f"{sim.get('size')} px")
    if data.get("user"):
        user = data["user"]
        parts.append(f"{user.get('n_images')} CR-free images + {user.get('n_darks')} darks from {user.get('images')}")
    lines.append("  data: " + ("; ".join(parts) or "?"))
    lines.append(f"  recipe: prior N(start, {_fmt(recipe.get('prior_scale'))}^2), kl_beta {_fmt(recipe.get('kl_beta'))}, "
                 f"lr {_fmt(recipe.get('lr'))} / scales {_fmt(recipe.get('scale_lr'))}, batch {recipe.get('batch_size')}, "
                 f"seeds train {recipe.get('train_seed')} / val {recipe.get('val_seed')} / fit {recipe.get('fit_seed')}")
    best = train.get("best_epoch")
    losses = val.get("val_loss") or []
    at_best = (lambda k: (val.get(k) or [None] * len(losses))[best - 1]) if best else (lambda k: None)
    lines.append(f"  trained {train.get('epochs_done', '?')} of {train.get('epochs', '?')} epochs "
                 f"({len(train.get('chunks') or [])} call(s), {_fmt(train.get('wall_seconds'), '.0f')} s with the "
                 f"novelty fits); best epoch {best}: val BCE {_fmt(at_best('val_loss'))}, "
                 f"TPR {_fmt(at_best('val_tpr'), '.2f')} %, FPR {_fmt(at_best('val_fpr'), '.4f')} %; "
                 f"temperature {_fmt(val.get('temperature'))}")
    vers = get("versions") or {}
    lines.append(f"  versions: cosmiq_pyro {vers.get('cosmiq_pyro')}, torch {vers.get('torch')}, "
                 f"pyro {vers.get('pyro')}, commit {(vers.get('git_commit') or '?')[:12]}; machine {get('machine', '?')}")
    return lines
