"""The datasets of the package and `as_dataset`, which turns what a user hands to ``fit_*`` into one.

* `PairDataset` (`cosmiq_pyro.data.pairs`) reads deepCR's two 'pair' layouts -- arrays of
  shape (N, W, W), or a list of ``.npy`` files each of shape (2 or 3, W, W) = [image, CR mask,
  optional ignore] -- with deepCR 0.3.1's train/val split size and sky-background augmentation.
* `SimulatedDataset` (`cosmiq_pyro.data.simulated`) draws HST-like frames from
  `cosmiq_pyro.data.simulate` on the fly; item ``i`` is always the same frame, and nothing is stored.
* `split_indices` (`cosmiq_pyro.data.split`): the seeded train/val split both use.

Every item is ``(image, mask, ignore)``: float32 tensors of shape (1, W, W), image in
electrons, mask and ignore 0./1. (the Dataset contract in DEVELOPING.md).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import Dataset

from .items import is_path_list
from .pairs import PairDataset
from .simulated import SimulatedDataset
from .split import split_indices

__all__ = ["PairDataset", "SimulatedDataset", "as_dataset", "split_indices"]


def as_dataset(data, name="data"):
    """Turn what a user passes to ``fit_*`` / ``evaluate`` into a Dataset.

    Parameters
    ----------
    data : Dataset, tuple, simulated set or list of paths
        * a `torch.utils.data.Dataset` -- returned as it is;
        * ``(image, mask)`` or ``(image, mask, ignore)`` arrays of shape (N, W, W), ignore
          may be None;
        * an object with ``image``, ``mask`` (and optionally ``ignore``, ``meta``)
          attributes, such as ``simulate.make_dataset(...)``;
        * a list of ``.npy`` paths in deepCR's pair layout.
    name : str
        How error messages refer to ``data`` (e.g. ``"train"``).

    Returns
    -------
    torch.utils.data.Dataset
        ``data`` itself, or a `PairDataset` with ``part="all"`` and no augmentation.
    """
    if isinstance(data, Dataset):
        return data
    try:
        if is_path_list(data):
            return PairDataset(list(data))
        if hasattr(data, "image") and hasattr(data, "mask"):
            return PairDataset(data.image, data.mask, getattr(data, "ignore", None),
                               meta=getattr(data, "meta", None))
        if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
            if len(data) not in (2, 3):
                raise ValueError(f"expected (image, mask) or (image, mask, ignore), got a "
                                 f"{type(data).__name__} of {len(data)} items")
            image, mask, *rest = data
            if mask is None:
                raise ValueError("mask is None; a training set needs CR masks")
            return PairDataset(image, mask, rest[0] if rest else None)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name}: {err}") from err
    raise TypeError(f"{name}: expected a torch Dataset, a tuple (image, mask[, ignore]) of "
                    f"(N, W, W) arrays, a simulated set or a list of .npy paths; "
                    f"got {type(data).__name__}")
