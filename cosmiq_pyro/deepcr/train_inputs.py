"""deepCR's training inputs translated for cosmiq_pyro: the datasets of each ``mode`` and ``init_from``.

Used by the `cosmiq_pyro.deepcr.training.train` facade (its module docstring has the keyword table).
"""
from __future__ import annotations

import os

import numpy as np
from torch.utils.data import Dataset, Subset

from ..data.dark_mix import DarkMixDataset
from ..data.pairs import PairDataset
from ..data.simulated import SimulatedDataset
from ..data.split import split_indices
from ..models.registry import load_model, resolve

__all__ = ["training_parts", "deterministic_net", "F_VAL", "MODES"]

F_VAL = 0.1  # deepCR's 90/10 train/validation split
MODES = ("pair", "simulate", "synthetic")


def training_parts(image, mask, ignore, sky, mode, aug_sky, seed, dark_options):
    """deepCR's 90/10 train/validation parts of the training data, per ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(image, Dataset):
        if any(a is not None for a in (mask, ignore, sky)) or tuple(aug_sky) != (0, 0):
            raise ValueError("with a Dataset as image, pass mask, ignore, sky and aug_sky to the Dataset itself")
        return tuple(Subset(image, split_indices(len(image), part, F_VAL, seed).tolist())
                     for part in ("train", "val"))
    if mode == "synthetic":
        if any(a is not None for a in (mask, ignore, sky)):
            raise ValueError("mode='synthetic' makes its own masks: pass mask=ignore=sky=None")
        if isinstance(image, bool) or not isinstance(image, (int, np.integer)):
            raise TypeError(f"mode='synthetic' takes the number of frames (int) or a SimulatedDataset "
                            f"as image, got {type(image).__name__}")
        return training_parts(SimulatedDataset(int(image), seed=seed), None, None, None, "pair", (0, 0), seed, None)
    if mode == "simulate":
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            raise TypeError(f"mode='simulate' is deepCR's: image= CR-free images and mask= dark frames "
                            f"(lists of .npy files); got image={image!r}, a frame count: cosmiq_pyro's own "
                            "simulator is mode='synthetic'")
        if mask is None:
            raise ValueError("mode='simulate' needs mask= the dark frames: .npy files each (2, W, W) = "
                             "[CR charge, CR mask]")
        if ignore is not None:
            raise ValueError("mode='simulate' reads ignore from each image file's second plane; pass ignore=None")
        n_train, n_val = dark_options.pop("n_mask_train"), dark_options.pop("n_mask_val")
        common = dict(sky=sky, aug_sky=aug_sky, f_val=F_VAL, seed=seed, **dark_options)
        return (DarkMixDataset(image, mask, part="train", n_mask=n_train, resample=True, **common),
                DarkMixDataset(image, mask, part="val", n_mask=n_val, resample=False, **common))
    if isinstance(image, (str, os.PathLike)):
        raise TypeError(f"image is one path {os.fspath(image)!r}; pass a list of .npy files")
    train_part = PairDataset(image, mask, ignore, sky, part="train", aug_sky=aug_sky, f_val=F_VAL, seed=seed)
    val_part = PairDataset(image, mask, ignore, sky, part="val", f_val=F_VAL, seed=seed)
    return train_part, val_part


def deterministic_net(init_from):
    """``init_from`` (a checkpoint path, published name, FitResult or net) as a UNet2Sigmoid, or None."""
    if init_from is None:
        return None
    if isinstance(init_from, (str, os.PathLike)):
        init_from = load_model(init_from)
    try:
        net, guide = resolve(init_from)
    except TypeError:
        raise TypeError(f"init_from must be a checkpoint path, FitResult or UNet2Sigmoid, "
                        f"got {type(init_from).__name__}") from None
    except ValueError as err:
        raise ValueError(f"init_from must hold deterministic weights: {err}") from None
    if guide is not None:
        raise ValueError("init_from must hold deterministic weights, got a Bayesian checkpoint")
    return net
