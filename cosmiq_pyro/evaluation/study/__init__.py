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

from dataclasses import dataclass, field as dataclass_field
from typing import Mapping

import pandas as pd

from ...data.datasets import as_dataset
from ...utils.checks import check_int
from .collect import as_predictor, collect
from .report import curves_of, prepare_dir, write_outputs
from .tables import ALL, FPR_TARGETS, groups, markdown_of, table_of

__all__ = ["evaluate", "compare", "Comparison", "FPR_TARGETS", "ALL"]


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


def evaluate(model, dataset, *, method: str | None = None, T: int | None = None, guide=None, seed: int = 0, tile: int = 1024,
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
    method : str, optional
        The predictive method of a VI model (`cosmiq_pyro.inference.methods.METHODS`;
        default its ``DEFAULT_METHOD``).
    T : int, optional
        Posterior draws per image of a Monte Carlo method (default ``DEFAULT_T``; not with a
        sampling-free method).
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
    check_int(seed, "seed", minimum=0)
    check_int(n_boot, "n_boot", minimum=0)
    predictor = as_predictor(model, guide=guide, method=method, T=T, tile=tile, what="model")
    ds = as_dataset(dataset, name="dataset")
    pooled, outputs = collect({"model": predictor}, ds, seed, progress)
    return table_of(pooled, outputs["model"], groups(pooled), n_boot, seed)


def compare(predictors: Mapping, dataset, *, out_dir=None, method: str | None = None, T: int | None = None,
            seed: int = 0,
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
    method, T, seed, progress, n_boot, tile
        As for `evaluate` (``method`` and ``T`` apply to every VI model given without its own
        predictor).

    Returns
    -------
    Comparison
        ``.table``, ``.markdown``, ``.files``, ``.curves``.
    """
    check_int(seed, "seed", minimum=0)
    check_int(n_boot, "n_boot", minimum=0)
    if not isinstance(predictors, Mapping) or not predictors:
        raise TypeError(f"predictors must be a non-empty mapping name -> predictor, got "
                        f"{type(predictors).__name__}")
    for name in predictors:
        if not isinstance(name, str) or not name:
            raise TypeError(f"predictor names must be non-empty strings, got {name!r}")
    resolved = {name: as_predictor(p, method=method, T=T, tile=tile, what=f"predictors[{name!r}]")
                for name, p in predictors.items()}
    out = None if out_dir is None else prepare_dir(out_dir)
    ds = as_dataset(dataset, name="dataset")
    pooled, outputs = collect(resolved, ds, seed, progress)
    row_groups = groups(pooled)
    tables = [table_of(pooled, outputs[name], row_groups, n_boot, seed).assign(predictor=name)
              for name in resolved]
    table = pd.concat(tables, ignore_index=True)
    table = table[["predictor"] + [c for c in table.columns if c != "predictor"]]
    markdown = markdown_of(table, n_boot > 0)
    # figure panels: all frames, then one per field
    panels = [(ALL, row_groups[0][2])] + [(f, frames) for f, g, frames in row_groups[1:] if g == ALL]
    curves = curves_of(pooled, outputs, row_groups[0][2])
    files = {}
    if out is not None:
        files = write_outputs(out, table, markdown, pooled, outputs, panels, curves)
    return Comparison(table=table, markdown=markdown, files=files, curves=curves)
