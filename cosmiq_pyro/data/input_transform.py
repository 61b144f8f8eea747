"""What an image goes through before a network sees it: the model's input transform.

Most models take the image in electrons as it is.  deepCR's ``WFC3-UVIS`` mask model (weight-norm
convolutions, no batch norm) takes a standardised frame instead, as deepCR's ``clean`` gives it:

.. math:: z = \\frac{x - \\bar x}{s_x},

with the mean :math:`\\bar x` and standard deviation :math:`s_x` of the finite pixels of the
*whole frame* (not of a tile: `standardise` is applied before any tiling).  A model adapted from
such a model keeps the transform: its checkpoint carries it (``"input_transform"``, a plain dict),
`cosmiq_pyro.predict` and the deepCR facade apply it, and its training frames go through it
(`TransformedDataset`).  A transform is a dict:

* ``None`` -- the image as it is (electrons);
* ``{"kind": "standardise"}`` -- `standardise`;
* ``{"kind": "scale", "divide_by": g}`` -- ``z = x / g``: a model that takes ADU (deepCR's
  ``decam``, whose spec says ``deepcr_input_unit = "ADU"``) gets electrons divided by the
  camera's gain ``g`` (e-/ADU).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["STANDARDISE", "KINDS", "check_input_transform", "adu_transform", "standardise", "model_input",
           "TransformedDataset"]

#: The transform of deepCR's standardised models (``WFC3-UVIS``).
STANDARDISE = {"kind": "standardise"}
#: kind -> the other keys it takes.
KINDS = {"standardise": (), "scale": ("divide_by",)}


def check_input_transform(transform) -> dict | None:
    """``transform`` checked: None or a dict with ``"kind"`` in `KINDS` and that kind's keys (a
    copy); else a ValueError."""
    if transform is None:
        return None
    kind = transform.get("kind") if isinstance(transform, dict) else None
    if kind not in KINDS or set(transform) != {"kind", *KINDS[kind]}:
        raise ValueError(f"input_transform must be None, {{'kind': 'standardise'}} or "
                         f"{{'kind': 'scale', 'divide_by': g}}, got {transform!r}")
    if kind == "scale":
        g = transform["divide_by"]
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not (np.isfinite(g) and g > 0):
            raise ValueError(f"input_transform 'scale': divide_by must be a finite number > 0, got {g!r}")
        return {"kind": "scale", "divide_by": float(g)}
    return dict(transform)


def adu_transform(gain_e_per_adu: float) -> dict:
    """The transform of a model that takes ADU: electrons divided by the gain."""
    return check_input_transform({"kind": "scale", "divide_by": gain_e_per_adu})


def standardise(image: np.ndarray) -> tuple[np.ndarray, np.float32, np.float32]:
    """``(z, a, b)`` with ``z = (x - b) / a`` float32, ``b`` the mean and ``a`` the standard
    deviation of the finite pixels of ``image`` (deepCR's ``clean`` for its ``norm`` models).

    Raises a ValueError for an image without two distinct finite values (``a = 0``).
    """
    x = np.asarray(image, dtype=np.float32)
    finite = x[np.isfinite(x)]
    b = np.float32(finite.mean()) if finite.size else np.float32(0)
    a = np.float32(finite.std()) if finite.size else np.float32(0)
    if not a > 0:
        raise ValueError("image is flat (zero standard deviation): a model with a standardised input cannot take it")
    return ((x - b) / a).astype(np.float32), a, b


def model_input(image: np.ndarray, transform: dict | None) -> np.ndarray:
    """The whole frame ``image`` (H, W) as the model takes it (float32)."""
    transform = check_input_transform(transform)
    if transform is None:
        return np.asarray(image, dtype=np.float32)
    if transform["kind"] == "scale":
        return (np.asarray(image, dtype=np.float32) / np.float32(transform["divide_by"])).astype(np.float32)
    return standardise(image)[0]


class TransformedDataset(Dataset):
    """A Dataset of ``(image, mask, ignore)`` items whose image goes through ``transform``.

    ``len``, mask, ignore and ``meta`` are the wrapped dataset's.
    """

    def __init__(self, dataset: Dataset, transform: dict | None):
        self.dataset = dataset
        self.transform = check_input_transform(transform)
        self.meta = getattr(dataset, "meta", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        image, *rest = self.dataset[i]  # rest: mask, ignore (and per-pixel weights, if any)
        if self.transform is not None:
            image = torch.from_numpy(model_input(image[0].numpy(), self.transform))[None]  # (1, H, W)
        return (image, *rest)

    def __repr__(self) -> str:
        return f"TransformedDataset({self.dataset!r}, {self.transform!r})"
