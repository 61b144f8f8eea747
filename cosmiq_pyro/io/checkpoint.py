"""The one-file checkpoint format: a payload of tensors and plain Python, written atomically.

A checkpoint is a single ``torch.save`` file that ``torch.load(path, weights_only=True)`` reads::

    {"format": "cosmiq_pyro", "version": 2, "package_version": "...",
     "config": {"kind": "UNet2Sigmoid" | "UNet2SigmoidVI", "hidden": 32, "norm": ...,
                "prior": {"kind": "IIDNormalPrior", "scale": 1.0}, ...},
     "net_state": {...},            # the net's state dict (for the VI model: norm layers, priors)
     "guide_state": {...} | None,   # the guide's state dict (None: deterministic twin)
     "history": {...},
     "temperature": 1.0,            # post-hoc logit temperature (inference.temperature); 1 if absent
     "sections": {                  # named extra parts of the model, each optional:
         "novelty": {...},          #   inference.novelty.NoveltyModel.state_dict()
         "moments": {...},          #   inference.moments.MomentSettings (the moment pass's calibration)
         "prior_shift": {...},      #   inference.prior_shift (a model trained at a boosted CR rate)
         ...}}                      #   (a model card, calibration constants: any name)

**Sections** are what travels with a model besides its weights: its novelty model today, a model
card or calibration constants tomorrow.  Each is tensors and plain Python (checked when written:
a value ``weights_only`` loading would refuse is a TypeError before anything is written).  A new
section needs no version bump: readers keep the sections they do not know (`read_payload`
returns them, `cosmiq_pyro.models.registry` carries them in ``FitResult.sections`` and writes them
back).  Every floating-point tensor of every section must be finite, and a section with a check
in `SECTION_CHECKS` (``"novelty"``: a finite threshold; ``"prior_shift"``: a finite logit shift) must pass it, when written and when read.

Versions: 1 (before sections) stored an optional ``"novelty"`` entry at the top level; it is read
as ``sections["novelty"]``.  Version 1 checkpoints written before the prior objects existed carry
``"prior_scale"`` instead of ``"prior"`` in their config; both load.

This module knows only the payload (`write_payload`, `read_payload`, `update_sections`,
`replace_sections`: format
and version checks, ``weights_only`` loading, atomic writes).  Turning a payload into a model and
back is `cosmiq_pyro.models.registry` (`save`, `load_model`).
"""
from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path
from typing import Callable

import torch

from .._version import __version__
from .atomic import atomic_open

__all__ = ["FORMAT", "VERSION", "SECTION_CHECKS", "write_payload", "read_payload", "update_sections", "replace_sections",
           "check_section", "weights_sha256", "WEIGHTS_SHA256_OF"]

FORMAT = "cosmiq_pyro"
#: 2: named ``sections`` (the novelty model inside); 1: optional top-level ``"novelty"``.
VERSION = 2
_REQUIRED = ("config", "net_state", "guide_state")
_PLAIN = (str, int, float, bool, type(None))


def write_payload(path, config: dict, net_state: dict, guide_state: dict | None, history: dict | None,
                  *, sections: dict | None = None, temperature: float = 1.0) -> Path:
    """Write one checkpoint file (complete or absent: a temporary beside ``path``, then renamed).

    Parameters
    ----------
    path : str or os.PathLike
    config, net_state, guide_state, history
        The model's architecture and states (copied to the CPU and detached) and its training
        history.
    sections : dict, optional
        ``name -> value``, the model's named extra parts (``"novelty"``: a
        `~cosmiq_pyro.inference.novelty.NoveltyModel` state dict); tensors and plain Python only.
    temperature : float
        The logit temperature (finite, > 0).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        A section holds something ``torch.load(weights_only=True)`` would refuse.
    ValueError
        A bad temperature, a section name that is not a non-empty str, non-finite values in a
        section, or a section failing its `SECTION_CHECKS` entry.
    """
    sections = _checked_sections(path, sections or {})
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "package_version": __version__,
        "config": dict(config),
        "net_state": {k: v.detach().cpu() for k, v in net_state.items()},
        "guide_state": None if guide_state is None else {k: v.detach().cpu() for k, v in guide_state.items()},
        "history": history or {},
        "temperature": _temperature(path, temperature),
        "sections": sections,
    }
    return _write(path, payload)


def read_payload(path) -> dict:
    """The payload of the checkpoint ``path`` (read with ``weights_only=True`` onto the CPU).

    A version-1 payload comes back in the version-2 layout (its ``"novelty"`` as
    ``sections["novelty"]``); ``"sections"`` is always a dict.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a cosmiq_pyro checkpoint, a newer version than this package reads, incomplete,
        holding NaN/inf weights, or a section failing its checks (e.g. a non-finite novelty
        threshold).
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
    version = payload.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version > VERSION:
        raise ValueError(f"{str(path)!r} has checkpoint version {version!r}; this cosmiq_pyro reads <= {VERSION}")
    payload["temperature"] = _temperature(path, payload.get("temperature", 1.0))
    missing = [k for k in _REQUIRED if k not in payload]
    if missing or not isinstance(payload["config"], dict) or "kind" not in payload["config"]:
        raise ValueError(f"{str(path)!r} is an incomplete cosmiq_pyro checkpoint (missing {missing or ['config.kind']})")
    if version < 2:  # version 1: the novelty model at the top level
        novelty = payload.pop("novelty", None)
        payload["sections"] = {} if novelty is None else {"novelty": novelty}
    payload["sections"] = _checked_sections(path, payload.get("sections"))
    _check_finite(path, payload)
    payload["version"] = VERSION
    return payload


def update_sections(path, sections: dict, out=None) -> Path:
    """Rewrite a checkpoint with ``sections`` added or replaced, everything else bit for bit.

    ``sections``: ``name -> value``; a value None removes that section.  Written to ``out``
    (default: ``path`` itself, replaced atomically) in the current version.  Returns the path
    written.
    """
    payload = read_payload(path)
    merged = dict(payload["sections"])
    for name, value in dict(sections).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    payload["sections"] = _checked_sections(path, merged)
    payload["package_version"] = __version__
    return _write(path if out is None else out, payload)


def replace_sections(path, sections: dict, out=None) -> str:
    """`update_sections` with the weights checked: the file is written beside ``out`` first and
    replaces ``out`` (default ``path``) only when its `weights_sha256` equals ``path``'s.

    Returns the weights' SHA-256 (the same before and after).

    Raises
    ------
    ValueError
        ``out`` does not name a ``.pth`` file.
    RuntimeError
        The written weights differ from ``path``'s (nothing is replaced).
    """
    path = Path(path)
    out = path if out is None else Path(out)
    if out.suffix != ".pth":
        raise ValueError(f"out must name a .pth file, got {str(out)!r}")
    digest = weights_sha256(read_payload(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.sections")
    try:
        update_sections(path, sections, out=staged)
        if weights_sha256(read_payload(staged)) != digest:
            raise RuntimeError(f"rewriting the sections of {str(path)!r} changed its weights; nothing written")
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    return digest


#: What `weights_sha256` digests (recorded beside the digest in a published model's JSON).
WEIGHTS_SHA256_OF = ("SHA-256 over net_state then guide_state, keys sorted, each 'part/key' (UTF-8) then the "
                     "tensor's raw bytes (C order)")


def weights_sha256(payload: dict) -> str:
    """The digest of a payload's weights alone (`WEIGHTS_SHA256_OF`): what no section rewrite
    (`update_sections`) may change.  ``payload``: `read_payload`'s output."""
    digest = hashlib.sha256()
    for part in ("net_state", "guide_state"):
        state = payload[part] or {}
        for key in sorted(state):
            digest.update(f"{part}/{key}".encode())
            digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def _write(path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # serialised first: torch.save reports a full disk as a RuntimeError
    torch.save(payload, buffer)
    with atomic_open(path) as fh:  # a full disk: an OSError naming the file
        fh.write(buffer.getbuffer())
    return path


# -- sections -------------------------------------------------------------------------------------

def _check_novelty(where: str, state) -> None:
    """The novelty model's frame threshold decides ``is_novel``: a finite number, else the flag
    would be always or never raised without anyone noticing."""
    if not isinstance(state, dict):
        raise ValueError(f"{where}: the novelty section must be a dict (a NoveltyModel state), "
                         f"got {type(state).__name__}")
    threshold = state.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"{where}: the novelty threshold must be a finite number, got {threshold!r}; "
                         "refit the novelty model (cosmiq_pyro.inference.novelty.fit_novelty)")


def _check_moments(where: str, state) -> None:
    """The moment pass's settings (`cosmiq_pyro.inference.moments.MomentSettings`): a variance
    scale that is a finite number > 0 and a known max-pool rule, else every moment map would be
    silently wrong."""
    if not isinstance(state, dict):
        raise ValueError(f"{where}: the moments section must be a dict, got {type(state).__name__}")
    scale = state.get("variance_scale")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"{where}: the moments variance_scale must be a finite number > 0, got {scale!r}")
    cap = state.get("variance_cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap)
                            or cap <= 0):
        raise ValueError(f"{where}: the moments variance_cap must be None or a finite number > 0, got {cap!r}")
    if state.get("pool", "argmax") not in ("argmax", "clark"):
        raise ValueError(f"{where}: the moments pool must be 'argmax' or 'clark', got {state.get('pool')!r}")


def _check_prior_shift(where: str, state) -> None:
    """The prior-shift correction (`cosmiq_pyro.inference.prior_shift`): a finite logit shift,
    else every probability would be NaN or pinned at 0 or 1."""
    if not isinstance(state, dict):
        raise ValueError(f"{where}: the prior_shift section must be a dict, got {type(state).__name__}")
    shift = state.get("logit_shift")
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
        raise ValueError(f"{where}: the prior_shift logit_shift must be a finite number, got {shift!r}")


#: Checks run on a section of that name when it is written or read: ``check(where, value)``
#: raises ValueError naming ``where`` (the file) and what is wrong.  Another section adds its
#: check here.
SECTION_CHECKS: dict[str, Callable[[str, object], None]] = {"novelty": _check_novelty, "moments": _check_moments,
                                                             "prior_shift": _check_prior_shift}


def check_section(name: str, value, where: str = "checkpoint section") -> None:
    """Check one section's value: tensors and plain Python only, finite float tensors, and its
    `SECTION_CHECKS` entry (TypeError / ValueError naming ``where`` and ``name``)."""
    _check_plain(value, f"{where}: section {name!r}")
    check = SECTION_CHECKS.get(name)
    if check is not None:
        check(where, value)


def _checked_sections(path, sections) -> dict:
    where = str(path)
    if sections is None:
        return {}
    if not isinstance(sections, dict):
        raise ValueError(f"{where!r}: checkpoint sections must be a dict of name -> value, got {type(sections).__name__}")
    for name, value in sections.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where!r}: a checkpoint section name must be a non-empty str, got {name!r}")
        check_section(name, value, repr(where))
    return dict(sections)


def _check_plain(value, where: str) -> None:
    """Tensors (finite when floating point) and plain Python containers of them, recursively."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{where} holds {int((~torch.isfinite(value)).sum())} non-finite value(s)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, _PLAIN):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}; expected str, int, float or bool")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"{where} is a {type(value).__name__}; a checkpoint holds tensors and plain Python "
                        "(dict, list, tuple, str, int, float, bool, None) only")


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
