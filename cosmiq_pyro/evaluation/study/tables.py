"""The numbers of a study: groups of frames (all, per field, per filter, per cell), one row of
metrics per group (`table_of`), bootstrap standard errors, and the markdown tables."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from .. import metrics as M
from .collect import Pooled, Output, take

__all__ = ["FPR_TARGETS", "ALL", "FIELD_ORDER", "groups", "table_of", "markdown_of"]

#: FPR operating points (fractions) of the TPR columns: deepCR's Table 2 uses 0.05 % and 0.5 %.
FPR_TARGETS = (0.0005, 0.005)
#: Group label meaning "every value" in the ``field`` and ``filter`` columns.
ALL = "all"
FIELD_ORDER = ("EX", "GC", "GAL")  # deepCR's order: extragalactic, globular cluster, galaxy
_TPR_COLUMNS = tuple(f"tpr_pct_at_{100 * t:g}pct_fpr" for t in FPR_TARGETS)
_SE_COLUMNS = tuple(f"{c}_se" for c in _TPR_COLUMNS)
_METRIC_COLUMNS = ("roc_auc", "brier", "nll", "ece", "aurc", "e_aurc", "error_auroc_entropy",
                   "error_auroc_epistemic", "entropy_cr_nats", "entropy_noncr_nats",
                   "epistemic_cr_nats", "epistemic_noncr_nats", "predict_s_per_frame")
_NAN = float("nan")


def _ordered(values, canonical=()) -> list:
    distinct = set(values)
    known = [v for v in canonical if v in distinct]
    return known + sorted(distinct - set(known))


def groups(pooled: Pooled) -> list:
    """``(field, filter, frame indices)`` of every row: all, per field, per filter, per cell."""
    frames = np.arange(len(pooled.field))
    field = np.array([f if f is not None else "" for f in pooled.field], dtype=object)
    filt = np.array([g if g is not None else "" for g in pooled.filter], dtype=object)
    fields = _ordered([f for f in pooled.field if f is not None], FIELD_ORDER)
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


def table_of(pooled: Pooled, out: Output, groups: list, n_boot: int, seed: int) -> pd.DataFrame:
    """One row of metrics per ``(field, filter, frames)`` group of one predictor's output."""
    rows = []
    for k, (field, filt, frames) in enumerate(groups):
        def pick(a, frames=frames):
            return take(a, pooled.offsets, frames)

        p, y = pick(out.prob), pick(pooled.y)
        row = {"field": field, "filter": filt, "T": out.T, "n_frames": int(frames.size)}
        row.update(_metrics(p, y, pick(out.entropy), pick(out.epistemic), out.is_probability))
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


def markdown_of(table: pd.DataFrame, with_se: bool) -> str:
    """Markdown tables of ``table``: all frames, by field, by filter, and a legend."""
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
    order = {f: k for k, f in enumerate(FIELD_ORDER)}
    return column.map(lambda f: (order.get(f, len(order)), f))
