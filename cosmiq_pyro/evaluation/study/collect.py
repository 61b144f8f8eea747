"""Collecting predictions: every frame read once, mapped by each predictor, its valid pixels
pooled frame after frame (`collect`), and anything a user passes turned into a predictor
(`as_predictor`)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...data.simulated import SimulatedDataset
from ...models.results import FitResult
from ...models.unet import UNet2Sigmoid
from ..peers import ModelPredictor

__all__ = ["Pooled", "Output", "as_predictor", "collect", "take"]


def as_predictor(obj, *, guide=None, method: str | None = None, T: int | None = None, tile: int, what: str):
    """``obj`` as an object with ``predict(image, ignore, meta, seed)`` and ``is_probability``."""
    try:
        if isinstance(obj, tuple) and len(obj) == 2 and guide is None:
            return ModelPredictor(obj[0], obj[1], method=method, T=T, tile=tile)
        if isinstance(obj, (FitResult, UNet2Sigmoid)):
            return ModelPredictor(obj, guide, method=method, T=T, tile=tile)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{what}: {err}") from None
    if callable(getattr(obj, "predict", None)) and hasattr(obj, "is_probability"):
        if guide is not None:
            raise ValueError(f"{what}: guide= applies only to a UNet2SigmoidVI, got a {type(obj).__name__}")
        return obj
    raise TypeError(f"{what} must be a FitResult, a UNet2Sigmoid, a (UNet2SigmoidVI, guide) pair or "
                    "a predictor with predict(image, ignore, meta, seed) and is_probability "
                    f"(see cosmiq_pyro.evaluation.peers); got {type(obj).__name__}")


@dataclass
class Pooled:
    """Truth of the valid pixels of every frame, frame after frame."""

    y: np.ndarray  # (n,) bool
    offsets: np.ndarray  # (n_frames + 1,) int64: frame k is [offsets[k], offsets[k + 1])
    field: list  # per frame: str or None
    filter: list


@dataclass
class Output:
    """One predictor's maps on the valid pixels, laid out like `Pooled.y`."""

    prob: np.ndarray  # (n,) float32
    entropy: Optional[np.ndarray]  # (n,) float32 or None
    epistemic: Optional[np.ndarray]
    is_probability: bool
    T: int
    seconds: np.ndarray  # (n_frames,) wall time of predict


def _frame_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def collect(predictors: dict, ds, seed: int, progress: bool):
    """Every frame of ``ds`` through every predictor: the pooled truth and one `Output` each."""
    n_frames = len(ds)
    if n_frames == 0:
        raise ValueError("dataset is empty; nothing to evaluate")
    ys, offsets, fields, filters = [], [0], [], []
    parts = {name: dict(prob=[], entropy=[], epistemic=[], seconds=[], T=1) for name in predictors}
    for i in tqdm(range(n_frames), desc="frames", unit="frame", disable=not progress):
        image, mask, ignore, meta = _read_frame(ds, i)
        keep = ~ignore
        ys.append(mask[keep])
        offsets.append(offsets[-1] + int(np.count_nonzero(keep)))
        fields.append(_label(meta, "field"))
        filters.append(_label(meta, "filter"))
        frame_seed = _frame_seed(seed, i)
        for name, predictor in predictors.items():
            start = time.perf_counter()
            pred = predictor.predict(image, ignore=ignore, meta=meta, seed=frame_seed)
            parts[name]["seconds"].append(time.perf_counter() - start)
            _keep_maps(parts[name], pred, keep, name, i, first=(i == 0))
    pooled = Pooled(y=np.concatenate(ys), offsets=np.asarray(offsets, np.int64), field=fields,
                     filter=filters)
    outputs = {}
    for name in list(parts):
        part = parts.pop(name)  # frees the per-frame pieces as soon as they are pooled
        outputs[name] = Output(
            prob=np.concatenate(part["prob"]),
            entropy=np.concatenate(part["entropy"]) if part["entropy"] else None,
            epistemic=np.concatenate(part["epistemic"]) if part["epistemic"] else None,
            is_probability=bool(predictors[name].is_probability), T=part["T"],
            seconds=np.asarray(part["seconds"]))
    return pooled, outputs


def _keep_maps(part: dict, pred, keep: np.ndarray, name: str, i: int, first: bool) -> None:
    """Check one prediction and append its valid pixels to ``part``."""
    where = f"predictor {name!r} on frame {i}"
    prob = _valid_map(getattr(pred, "prob", None), keep, f"{where}: prob")
    lo, hi = (prob.min(), prob.max()) if prob.size else (0.0, 0.0)
    if not (lo >= 0 and hi <= 1):  # also catches NaN
        raise ValueError(f"{where}: prob must lie in [0, 1] on non-ignored pixels, found [{lo}, {hi}]")
    part["prob"].append(prob)
    T = getattr(pred, "T", 1)
    part["T"] = None if T is None else int(T)
    for key in ("entropy", "epistemic"):
        value = getattr(pred, key, None)
        if first:
            part[f"has_{key}"] = value is not None
        elif (value is not None) != part[f"has_{key}"]:
            raise ValueError(f"{where}: {key} is {'missing' if value is None else 'present'} "
                             "here but not on frame 0; a predictor must be consistent")
        if value is not None:
            u = _valid_map(value, keep, f"{where}: {key}")
            if u.size and not (np.isfinite(u.min()) and np.isfinite(u.max()) and u.min() >= -1e-6):
                raise ValueError(f"{where}: {key} must be finite and >= 0 nats on non-ignored pixels")
            part[key].append(u)


def _valid_map(a, keep: np.ndarray, what: str) -> np.ndarray:
    if a is None:
        raise TypeError(f"{what} is None; a prediction needs a probability or score map")
    a = np.asarray(a)
    if a.shape != keep.shape:
        raise ValueError(f"{what} has shape {a.shape}, the frame has {keep.shape}")
    return a[keep].astype(np.float32, copy=False)


def _read_frame(ds, i: int):
    """``(image, mask, ignore, meta)`` of frame ``i``: float32 / bool / bool (H, W) and a dict."""
    if isinstance(ds, SimulatedDataset) and not ds.augment:
        frame = ds.frame(i)  # same arrays as ds[i], plus the simulator's full metadata
        return (frame.image.astype(np.float32, copy=False), frame.mask.astype(bool),
                frame.ignore.astype(bool), dict(frame.meta))
    item = ds[i]
    if not (isinstance(item, (tuple, list)) and len(item) in (3, 4)):
        raise TypeError(f"dataset item {i} must be (image, mask, ignore[, weight]), got {type(item).__name__}")
    # a training set's fourth tensor, per-pixel likelihood weights, plays no part here
    image, mask, ignore = (_plane(a, name, i) for a, name in zip(item[:3], ("image", "mask", "ignore")))
    if not (image.shape == mask.shape == ignore.shape):
        raise ValueError(f"dataset item {i}: image {image.shape}, mask {mask.shape} and ignore "
                         f"{ignore.shape} must have the same shape")
    meta = getattr(ds, "meta", None)
    row = meta.iloc[i].to_dict() if isinstance(meta, pd.DataFrame) else {}
    return image.astype(np.float32, copy=False), mask > 0.5, ignore > 0.5, row


def _plane(a, name: str, i: int) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"dataset item {i}: {name} must have shape (1, H, W) or (H, W), got {a.shape}")
    return a


def _label(meta: Mapping, key: str) -> Optional[str]:
    value = meta.get(key)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def take(a: Optional[np.ndarray], offsets: np.ndarray, frames: np.ndarray):
    """Pixels of ``frames`` (sorted or not) from an array laid out by ``offsets``."""
    if a is None:
        return None
    if frames.size == offsets.size - 1 and np.array_equal(frames, np.arange(frames.size)):
        return a
    return np.concatenate([a[offsets[k]:offsets[k + 1]] for k in frames])
