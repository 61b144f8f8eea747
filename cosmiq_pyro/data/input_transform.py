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
* ``{"kind": "standardise"}`` -- `standardise`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["STANDARDISE", "KINDS", "check_input_transform", "standardise", "model_input", "TransformedDataset"]

#: The transform of deepCR's standardised models (``WFC3-UVIS``).
STANDARDISE = {"kind": "standardise"}
KINDS = ("standardise",)


def check_input_transform(transform) -> dict | None:
    """``transform`` checked: None or a dict with ``"kind"`` in `KINDS` (a copy); else a ValueError."""
    if transform is None:
        return None
    if not isinstance(transform, dict) or transform.get("kind") not in KINDS or set(transform) != {"kind"}:
        raise ValueError(f"input_transform must be None or {{'kind': one of {KINDS}}}, got {transform!r}")
    return dict(transform)


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
    if check_input_transform(transform) is None:
        return np.asarray(image, dtype=np.float32)
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
        image, mask, ignore = self.dataset[i]
        if self.transform is not None:
            image = torch.from_numpy(model_input(image[0].numpy(), self.transform))[None]  # (1, H, W)
        return image, mask, ignore

    def __repr__(self) -> str:
        return f"TransformedDataset({self.dataset!r}, {self.transform!r})"
