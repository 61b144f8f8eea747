"""Evaluate CR predictors on a dataset: `evaluate` (one model) and `compare` (several).

Every frame of the dataset is read once and mapped by each predictor (the interface of
`cosmiq_pyro.evaluation.peers`: our models, deepCR, LACosmic).  Of each frame only the valid pixels
(``ignore`` False) are kept, in flat arrays laid frame after frame: the truth, the
probability (or score), the predictive entropy and the epistemic term -- about 13 bytes per
pixel per predictor, so 100 frames of 256 x 256 take ~85 MB each.  Groups of frames (a field,
a filter, both, all) are slices of these arrays, and every number comes from
`cosmiq_pyro.evaluation.metrics` on them.

The table (`evaluate`; `compare` stacks one per predictor under a ``predictor`` column) has one
row per group: ``field``/``filter`` name the group, ``"all"`` standing for every value, so
``(all, all)`` is the whole dataset, ``(EX, all)`` one field over every filter, ``(all,
F606W)`` one filter over every field and ``(EX, F606W)`` one cell.  Without ``dataset.meta``
only the ``(all, all)`` row exists.  Columns:

================================  ==============================================================
``T``                             posterior draws per image (1: point estimate or peer)
``n_frames``, ``n_pixels``,       frames, valid (non-ignored) pixels, CR pixels among them
``n_cr_pixels``
``tpr_pct_at_0.05pct_fpr``,       largest TPR (%) with pixel FPR <= 0.05 % / 0.5 %
``tpr_pct_at_0.5pct_fpr``         (`metrics.tpr_at_fpr`; deepCR's Table 2 operating points)
``..._se``                        bootstrap standard error over frames (``n_boot > 0``; rows of
                                  all filters)
``roc_auc``                       `metrics.roc_auc`
``brier``, ``nll``, ``ece``       `metrics.brier`, `metrics.nll` (nats), `metrics.ece` (15 bins);
                                  NaN for a score that is not a probability (LACosmic)
``aurc``, ``e_aurc``              risk-coverage of the decision ``p > 0.5`` ranked by predictive
                                  entropy (`metrics.risk_coverage`)
``error_auroc_entropy``,          how well entropy / epistemic separate wrong pixels from right
``error_auroc_epistemic``         ones (`metrics.error_detection_auroc`)
``entropy_cr_nats``, ...          mean entropy / epistemic (nats) on CR and non-CR pixels
``predict_s_per_frame``           mean wall time of the predictor's ``predict`` per frame
================================  ==============================================================

NaN means "not defined for this predictor or group" (no probability, no posterior, no CR
pixel, no error), never a guess.
"""
from __future__ import annotations

import io
import numbers
import time
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from . import metrics as M
from . import plots
from ..io.atomic import write_bytes_atomic
from ..io.checkpoint import FitResult
from ..data.datasets import SimulatedDataset, as_dataset
from ..models.unet import UNet2Sigmoid
from .peers import ModelPredictor

__all__ = ["evaluate", "compare", "Comparison", "FPR_TARGETS", "ALL"]

#: FPR operating points (fractions) of the TPR columns: deepCR's Table 2 uses 0.05 % and 0.5 %.
FPR_TARGETS = (0.0005, 0.005)
#: Group label meaning "every value" in the ``field`` and ``filter`` columns.
ALL = "all"
_FIELD_ORDER = ("EX", "GC", "GAL")  # deepCR's order: extragalactic, globular cluster, galaxy
_TPR_COLUMNS = tuple(f"tpr_pct_at_{100 * t:g}pct_fpr" for t in FPR_TARGETS)
_SE_COLUMNS = tuple(f"{c}_se" for c in _TPR_COLUMNS)
_METRIC_COLUMNS = ("roc_auc", "brier", "nll", "ece", "aurc", "e_aurc", "error_auroc_entropy",
                   "error_auroc_epistemic", "entropy_cr_nats", "entropy_noncr_nats",
                   "epistemic_cr_nats", "epistemic_noncr_nats", "predict_s_per_frame")
_NAN = float("nan")


# --------------------------------------------------------------------------- public API


@dataclass
class Comparison:
    """What `compare` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (predictor, field, filter) group; columns as in the module docstring.
    markdown : str
        Tables of the ``(all, all)`` rows, the per-field and the per-filter rows.
    files : dict of str to pathlib.Path
        What was written into ``out_dir`` (empty without it): ``"csv"`` table.csv,
        ``"markdown"`` table.md, and the figures ``"roc"`` roc.png, ``"reliability"``
        reliability.png, ``"risk_coverage"`` risk_coverage.png, ``"error_vs_entropy"``
        error_vs_entropy.png (a figure is left out when no predictor has what it shows).
    curves : dict
        Curves over all frames, ``curves[kind][predictor]``, kinds ``"roc"``
        (`metrics.RocCurve`), ``"reliability"``, ``"risk_coverage"``, ``"error_vs_entropy"``
        (only predictors for which the curve is defined).
    """

    table: pd.DataFrame
    markdown: str
    files: dict = dataclass_field(default_factory=dict)
    curves: dict = dataclass_field(default_factory=dict)

    def _repr_markdown_(self) -> str:  # Jupyter shows the tables
        return self.markdown

    def __repr__(self) -> str:
        names = list(dict.fromkeys(self.table["predictor"]))
        return (f"Comparison({len(names)} predictors: {', '.join(names)}; {len(self.table)} rows; "
                f"files: {', '.join(p.name for p in self.files.values()) or 'none'})")


def evaluate(model, dataset, *, T: int = 16, guide=None, seed: int = 0, tile: int = 1024,
             progress: bool = True, n_boot: int = 0) -> pd.DataFrame:
    """Metrics of one model or predictor over a dataset, per field and filter.

    Parameters
    ----------
    model : FitResult, UNet2Sigmoid, UNet2SigmoidVI or predictor
        Our models go through `cosmiq_pyro.predict`; a VI model needs ``guide`` unless it is
        inside a `FitResult`.  Any object with the `cosmiq_pyro.evaluation.peers` interface
        (``predict``, ``is_probability``) is accepted too, e.g. `peers.LACosmicPeer()`.
    dataset : Dataset, tuple of arrays, simulated set or list of .npy paths
        Anything `data.as_dataset` takes; ``dataset.meta`` (field, filter per frame) gives
        the per-group rows.  A `data.SimulatedDataset` without augmentation is read through
        its ``frame(i)``, which also yields the simulator's per-frame metadata (read noise,
        full well) that `peers.LACosmicPeer` uses.
    T : int
        Posterior draws per image for a VI model.
    seed : int
        Frame ``i`` is predicted with seed ``SeedSequence([seed, i])`` (32 bits), so frames
        get independent posterior draws and the same call gives the same table.
    tile : int
        Tile side for `predict`.
    progress : bool
        tqdm bar over frames.
    n_boot : int
        Bootstrap resamples of frames for the standard errors of the TPR columns (0: none),
        computed for the all-frames row and the per-field rows (the others get NaN: each
        resample re-ranks every pixel, ~0.3 s per 10 million pixels).  Resamples are drawn
        from ``seed`` and are the same for every predictor (a paired bootstrap).

    Returns
    -------
    pandas.DataFrame
        One row per group; columns in the module docstring.
    """
    _check_int(seed, "seed", minimum=0)
    _check_int(n_boot, "n_boot", minimum=0)
    predictor = _as_predictor(model, guide=guide, T=T, tile=tile, what="model")
    ds = as_dataset(dataset, name="dataset")
    pooled, outputs = _collect({"model": predictor}, ds, seed, progress)
    return _table(pooled, outputs["model"], _groups(pooled), n_boot, seed)


def compare(predictors: Mapping, dataset, *, out_dir=None, T: int = 16, seed: int = 0,
            progress: bool = True, n_boot: int = 0, tile: int = 1024) -> Comparison:
    """Run several predictors on the same frames; tabulate and (with ``out_dir``) draw them.

    Parameters
    ----------
    predictors : mapping of str to predictor
        Name -> a `FitResult`, a `UNet2Sigmoid`, a ``(UNet2SigmoidVI, guide)`` pair, or any
        object with the `cosmiq_pyro.evaluation.peers` interface (`peers.DeepCRPeer`,
        `peers.LACosmicPeer`, your own).
    dataset
        As for `evaluate`.
    out_dir : str or Path, optional
        Directory (created if missing) for table.csv, table.md, roc.png, reliability.png,
        risk_coverage.png and error_vs_entropy.png.  Each file is written to a temporary
        name and renamed, so none is ever half-written.  Each figure has a panel for all
        frames and one per field; predictors keep one colour throughout.
    T, seed, progress, n_boot, tile
        As for `evaluate` (``T`` applies to every VI model given without its own predictor).

    Returns
    -------
    Comparison
        ``.table``, ``.markdown``, ``.files``, ``.curves``.
    """
    _check_int(seed, "seed", minimum=0)
    _check_int(n_boot, "n_boot", minimum=0)
    if not isinstance(predictors, Mapping) or not predictors:
        raise TypeError(f"predictors must be a non-empty mapping name -> predictor, got "
                        f"{type(predictors).__name__}")
    for name in predictors:
        if not isinstance(name, str) or not name:
            raise TypeError(f"predictor names must be non-empty strings, got {name!r}")
    resolved = {name: _as_predictor(p, T=T, tile=tile, what=f"predictors[{name!r}]")
                for name, p in predictors.items()}
    out = None if out_dir is None else _prepare_dir(out_dir)
    ds = as_dataset(dataset, name="dataset")
    pooled, outputs = _collect(resolved, ds, seed, progress)
    groups = _groups(pooled)
    tables = [_table(pooled, outputs[name], groups, n_boot, seed).assign(predictor=name)
              for name in resolved]
    table = pd.concat(tables, ignore_index=True)
    table = table[["predictor"] + [c for c in table.columns if c != "predictor"]]
    markdown = _markdown(table, n_boot > 0)
    # figure panels: all frames, then one per field
    panels = [(ALL, groups[0][2])] + [(f, frames) for f, g, frames in groups[1:] if g == ALL]
    curves = _curves(pooled, outputs, groups[0][2])
    files = {}
    if out is not None:
        files = _write_outputs(out, table, markdown, pooled, outputs, panels, curves)
    return Comparison(table=table, markdown=markdown, files=files, curves=curves)


# --------------------------------------------------------------------------- predictors


def _as_predictor(obj, *, guide=None, T: int, tile: int, what: str):
    """``obj`` as an object with ``predict(image, ignore, meta, seed)`` and ``is_probability``."""
    try:
        if isinstance(obj, tuple) and len(obj) == 2 and guide is None:
            return ModelPredictor(obj[0], obj[1], T=T, tile=tile)
        if isinstance(obj, (FitResult, UNet2Sigmoid)):
            return ModelPredictor(obj, guide, T=T, tile=tile)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{what}: {err}") from None
    if callable(getattr(obj, "predict", None)) and hasattr(obj, "is_probability"):
        if guide is not None:
            raise ValueError(f"{what}: guide= applies only to a UNet2SigmoidVI, got a {type(obj).__name__}")
        return obj
    raise TypeError(f"{what} must be a FitResult, a UNet2Sigmoid, a (UNet2SigmoidVI, guide) pair or "
                    "a predictor with predict(image, ignore, meta, seed) and is_probability "
                    f"(see cosmiq_pyro.evaluation.peers); got {type(obj).__name__}")


# --------------------------------------------------------------------------- collection


@dataclass
class _Pooled:
    """Truth of the valid pixels of every frame, frame after frame."""

    y: np.ndarray  # (n,) bool
    offsets: np.ndarray  # (n_frames + 1,) int64: frame k is [offsets[k], offsets[k + 1])
    field: list  # per frame: str or None
    filter: list


@dataclass
class _Output:
    """One predictor's maps on the valid pixels, laid out like `_Pooled.y`."""

    prob: np.ndarray  # (n,) float32
    entropy: Optional[np.ndarray]  # (n,) float32 or None
    epistemic: Optional[np.ndarray]
    is_probability: bool
    T: int
    seconds: np.ndarray  # (n_frames,) wall time of predict


def _frame_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def _collect(predictors: dict, ds, seed: int, progress: bool):
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
    pooled = _Pooled(y=np.concatenate(ys), offsets=np.asarray(offsets, np.int64), field=fields,
                     filter=filters)
    outputs = {}
    for name in list(parts):
        part = parts.pop(name)  # frees the per-frame pieces as soon as they are pooled
        outputs[name] = _Output(
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
    part["T"] = int(getattr(pred, "T", 1))
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
    if not (isinstance(item, (tuple, list)) and len(item) == 3):
        raise TypeError(f"dataset item {i} must be (image, mask, ignore), got {type(item).__name__}")
    image, mask, ignore = (_plane(a, name, i) for a, name in zip(item, ("image", "mask", "ignore")))
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


# --------------------------------------------------------------------------- groups and rows


def _ordered(values, canonical=()) -> list:
    distinct = set(values)
    known = [v for v in canonical if v in distinct]
    return known + sorted(distinct - set(known))


def _groups(pooled: _Pooled) -> list:
    """``(field, filter, frame indices)`` of every row: all, per field, per filter, per cell."""
    frames = np.arange(len(pooled.field))
    field = np.array([f if f is not None else "" for f in pooled.field], dtype=object)
    filt = np.array([g if g is not None else "" for g in pooled.filter], dtype=object)
    fields = _ordered([f for f in pooled.field if f is not None], _FIELD_ORDER)
    filters = _ordered([g for g in pooled.filter if g is not None])
    groups = [(ALL, ALL, frames)]
    groups += [(f, ALL, frames[field == f]) for f in fields]
    groups += [(ALL, g, frames[filt == g]) for g in filters]
    for f in fields:
        for g in filters:
            cell = frames[(field == f) & (filt == g)]
            if cell.size:
                groups.append((f, g, cell))
    return groups


def _take(a: Optional[np.ndarray], offsets: np.ndarray, frames: np.ndarray):
    """Pixels of ``frames`` (sorted or not) from an array laid out by ``offsets``."""
    if a is None:
        return None
    if frames.size == offsets.size - 1 and np.array_equal(frames, np.arange(frames.size)):
        return a
    return np.concatenate([a[offsets[k]:offsets[k + 1]] for k in frames])


def _metrics(p, y, h, e, is_probability: bool) -> dict:
    """One row's metrics from the valid pixels of a group (see the module docstring)."""
    n = int(y.size)
    n_cr = int(np.count_nonzero(y))
    row = {"n_pixels": n, "n_cr_pixels": n_cr}
    both = 0 < n_cr < n
    tpr = M.tpr_at_fpr(p, y, FPR_TARGETS).tpr_pct if both else [_NAN] * len(FPR_TARGETS)
    row.update({col: float(v) for col, v in zip(_TPR_COLUMNS, tpr)})
    row["roc_auc"] = M.roc_auc(p, y) if both else _NAN
    calibrated = is_probability and n > 0
    row["brier"] = M.brier(p, y) if calibrated else _NAN
    row["nll"] = M.nll(p, y) if calibrated else _NAN
    row["ece"] = M.ece(p, y) if calibrated else _NAN
    # decisions p > 0.5 and their ranking by uncertainty mean something only for probabilities
    rc = M.risk_coverage(p, y, h) if (is_probability and h is not None and n > 0) else None
    row["aurc"] = rc.aurc if rc is not None else _NAN
    row["e_aurc"] = rc.e_aurc if rc is not None else _NAN
    errors_both = rc is not None and 0 < rc.n_errors < rc.n
    row["error_auroc_entropy"] = M.error_detection_auroc(p, y, h) if errors_both else _NAN
    row["error_auroc_epistemic"] = (M.error_detection_auroc(p, y, e)
                                    if errors_both and e is not None else _NAN)
    for name, u in (("entropy", h), ("epistemic", e)):
        row[f"{name}_cr_nats"] = float(u[y].mean(dtype=np.float64)) if u is not None and n_cr else _NAN
        row[f"{name}_noncr_nats"] = (float(u[~y].mean(dtype=np.float64))
                                     if u is not None and n_cr < n else _NAN)
    return row


def _bootstrap_tpr_se(p, y, offsets, frames, n_boot: int, rng) -> list:
    """Standard deviation of the TPR columns over ``n_boot`` resamples of ``frames``.

    Each resample draws ``len(frames)`` frames with replacement and pools their pixels;
    resamples without both classes are skipped.  NaN with fewer than 2 frames or 2 resamples.
    """
    if len(frames) < 2:
        return [_NAN] * len(FPR_TARGETS)
    spans = [(offsets[k], offsets[k + 1]) for k in frames]
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(spans), len(spans))
        pb = np.concatenate([p[spans[j][0]:spans[j][1]] for j in pick])
        yb = np.concatenate([y[spans[j][0]:spans[j][1]] for j in pick])
        n_cr = int(np.count_nonzero(yb))
        if 0 < n_cr < yb.size:
            values.append(M.tpr_at_fpr(pb, yb, FPR_TARGETS).tpr_pct)
    if len(values) < 2:
        return [_NAN] * len(FPR_TARGETS)
    return [float(v) for v in np.std(np.asarray(values), axis=0, ddof=1)]


def _table(pooled: _Pooled, out: _Output, groups: list, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for k, (field, filt, frames) in enumerate(groups):
        take = lambda a: _take(a, pooled.offsets, frames)  # noqa: E731
        p, y = take(out.prob), take(pooled.y)
        row = {"field": field, "filter": filt, "T": out.T, "n_frames": int(frames.size)}
        row.update(_metrics(p, y, take(out.entropy), take(out.epistemic), out.is_probability))
        if n_boot:
            se = [_NAN] * len(_SE_COLUMNS)
            if filt == ALL:  # all frames and each field: the rows whose stability is asked about
                # the same resamples for every predictor of a comparison (paired bootstrap)
                rng = np.random.default_rng([seed, k])
                se = _bootstrap_tpr_se(out.prob, pooled.y, pooled.offsets, frames, n_boot, rng)
            row.update(dict(zip(_SE_COLUMNS, se)))
        row["predict_s_per_frame"] = float(out.seconds[frames].mean())
        rows.append(row)
    columns = (["field", "filter", "T", "n_frames", "n_pixels", "n_cr_pixels", *_TPR_COLUMNS]
               + (list(_SE_COLUMNS) if n_boot else []) + list(_METRIC_COLUMNS))
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- markdown


_MD_METRICS = [  # (column, header, format)
    ("n_frames", "Frames", "{:d}"),
    ("n_cr_pixels", "CR px", "{:d}"),
    (_TPR_COLUMNS[0], "TPR@0.05% FPR (%)", "{:.2f}"),
    (_TPR_COLUMNS[1], "TPR@0.5% FPR (%)", "{:.2f}"),
    ("roc_auc", "ROC AUC", "{:.4f}"),
    ("brier", "Brier", "{:.3g}"),
    ("nll", "NLL (nats)", "{:.3g}"),
    ("ece", "ECE", "{:.3g}"),
    ("aurc", "AURC", "{:.3g}"),
    ("e_aurc", "E-AURC", "{:.3g}"),
    ("error_auroc_entropy", "Error AUROC (entropy)", "{:.3f}"),
    ("error_auroc_epistemic", "Error AUROC (epistemic)", "{:.3f}"),
    ("entropy_cr_nats", "Entropy CR / non-CR (nats)", None),
    ("epistemic_cr_nats", "Epistemic CR / non-CR (nats)", None),
    ("predict_s_per_frame", "s / frame", "{:.3g}"),
]


def _cell(row, column: str, fmt: Optional[str], with_se: bool) -> str:
    if fmt is None:  # CR / non-CR pair
        base = column[: -len("_cr_nats")]
        a, b = row[column], row[f"{base}_noncr_nats"]
        return "—" if np.isnan(a) and np.isnan(b) else f"{_num(a, '{:.3g}')} / {_num(b, '{:.3g}')}"
    value = row[column]
    text = _num(value, fmt)
    if with_se and column in _TPR_COLUMNS and text != "—":
        se = row[f"{column}_se"]
        if not np.isnan(se):
            text += f" ± {se:.2f}"
    return text


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if fmt == "{:d}":
        return fmt.format(int(value))
    return fmt.format(float(value))


def _md_table(rows: pd.DataFrame, keys: list, with_se: bool) -> str:
    headers = [h for _, h in keys] + [h for _, h, _ in _MD_METRICS]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(["---"] * len(keys) + ["---:"] * len(_MD_METRICS)) + "|"]
    for _, row in rows.iterrows():
        cells = [str(row[c]) for c, _ in keys]
        cells += [_cell(row, c, f, with_se) for c, _, f in _MD_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown(table: pd.DataFrame, with_se: bool) -> str:
    overall = table[(table["field"] == ALL) & (table["filter"] == ALL)]
    parts = ["#### All frames", "",
             _md_table(overall, [("predictor", "Predictor"), ("T", "T")], with_se)]
    by_field = table[(table["field"] != ALL) & (table["filter"] == ALL)]
    if len(by_field):
        parts += ["", "#### By field", "",
                  _md_table(by_field.sort_values("field", kind="stable", key=_field_key),
                            [("field", "Field"), ("predictor", "Predictor")], with_se)]
    by_filter = table[(table["field"] == ALL) & (table["filter"] != ALL)]
    if len(by_filter):
        parts += ["", "#### By filter", "",
                  _md_table(by_filter.sort_values("filter", kind="stable"),
                            [("filter", "Filter"), ("predictor", "Predictor")], with_se)]
    parts += ["", "TPR at a fixed pixel FPR in %; Brier, NLL, ECE, AURC and E-AURC are "
              "fractions (lower is better); error AUROC: how well the uncertainty separates "
              "wrong pixels (decision p > 0.5) from right ones (0.5 = not at all). "
              + ("± is the bootstrap standard error over frames. " if with_se else "")
              + "— : not defined for that predictor (a score that is not a probability has "
              "no calibration or entropy; a point estimate has no epistemic term)."]
    return "\n".join(parts) + "\n"


def _field_key(column: pd.Series) -> pd.Series:
    order = {f: k for k, f in enumerate(_FIELD_ORDER)}
    return column.map(lambda f: (order.get(f, len(order)), f))


# --------------------------------------------------------------------------- curves, figures


_FIGURES = (  # (kind, file name)
    ("roc", "roc.png"),
    ("reliability", "reliability.png"),
    ("risk_coverage", "risk_coverage.png"),
    ("error_vs_entropy", "error_vs_entropy.png"),
)


def _curves(pooled: _Pooled, outputs: dict, frames: np.ndarray) -> dict:
    """``{kind: {predictor: metrics result}}`` on ``frames``, for the predictors it applies to."""
    y = _take(pooled.y, pooled.offsets, frames)
    n_cr = int(np.count_nonzero(y))
    curves = {kind: {} for kind, _ in _FIGURES}
    for name, out in outputs.items():
        p = _take(out.prob, pooled.offsets, frames)
        if y.size == 0:
            continue
        if 0 < n_cr < y.size:
            curves["roc"][name] = M.roc_curve(p, y)
        if out.is_probability:
            curves["reliability"][name] = M.reliability_curve(p, y)
            if out.entropy is not None:
                h = _take(out.entropy, pooled.offsets, frames)
                curves["risk_coverage"][name] = M.risk_coverage(p, y, h)
                curves["error_vs_entropy"][name] = M.error_vs_uncertainty(p, y, h)
    return curves


def _draw(kind: str, result, ax, name: str, colour: str) -> None:
    if kind == "roc":
        plots.plot_roc(result, ax=ax, label=name, color=colour)
    elif kind == "reliability":
        plots.plot_reliability(result, ax=ax, label=name, color=colour)
    elif kind == "risk_coverage":
        plots.plot_risk_coverage(result, ax=ax, label=name, oracle=False, color=colour)
    else:
        plots.plot_error_vs_uncertainty(result, ax=ax, label=name, color=colour,
                                        u_label="Predictive entropy (nats)")


def _write_outputs(out: Path, table: pd.DataFrame, markdown: str, pooled: _Pooled,
                   outputs: dict, panels: list, overall_curves: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": write_bytes_atomic(out / "table.csv", table.to_csv(index=False).encode()),
             "markdown": write_bytes_atomic(out / "table.md", markdown.encode())}
    colours = {name: f"C{k % 10}" for k, name in enumerate(outputs)}
    panel_curves = [overall_curves if label == ALL else _curves(pooled, outputs, frames)
                    for label, frames in panels]
    for kind, filename in _FIGURES:
        if not any(c[kind] for c in panel_curves):
            continue
        fig = Figure(figsize=(5.6 * len(panels), 4.8), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (label, frames), curves in zip(axes, panels, panel_curves):
            for name, result in curves[kind].items():
                _draw(kind, result, ax, name, colours[name])
            where = "all frames" if label == ALL else f"field {label}"
            ax.set_title(f"{ax.get_title()}\n{where} ({frames.size} frames)", fontsize="medium")
        files[kind] = _save_figure(fig, out / filename)
    return files


def _save_figure(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return write_bytes_atomic(path, buffer.getvalue())


def _prepare_dir(out_dir) -> Path:
    """Check ``out_dir`` before the (long) run; it is created only when files are written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a directory")
    return out


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
