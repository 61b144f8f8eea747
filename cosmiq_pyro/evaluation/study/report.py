"""The figures of a comparison (ROC, reliability, risk-coverage, error vs entropy; one panel for
all frames and one per field) and the files written into its output directory."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import metrics as M
from .. import plots
from ...io.atomic import write_bytes_atomic
from .collect import Pooled, take
from .tables import ALL

__all__ = ["curves_of", "write_outputs", "prepare_dir"]


_FIGURES = (  # (kind, file name)
    ("roc", "roc.png"),
    ("reliability", "reliability.png"),
    ("risk_coverage", "risk_coverage.png"),
    ("error_vs_entropy", "error_vs_entropy.png"),
)


def curves_of(pooled: Pooled, outputs: dict, frames: np.ndarray) -> dict:
    """``{kind: {predictor: metrics result}}`` on ``frames``, for the predictors it applies to."""
    y = take(pooled.y, pooled.offsets, frames)
    n_cr = int(np.count_nonzero(y))
    curves = {kind: {} for kind, _ in _FIGURES}
    for name, out in outputs.items():
        p = take(out.prob, pooled.offsets, frames)
        if y.size == 0:
            continue
        if 0 < n_cr < y.size:
            curves["roc"][name] = M.roc_curve(p, y)
        if out.is_probability:
            curves["reliability"][name] = M.reliability_curve(p, y)
            if out.entropy is not None:
                h = take(out.entropy, pooled.offsets, frames)
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


def write_outputs(out: Path, table: pd.DataFrame, markdown: str, pooled: Pooled,
                   outputs: dict, panels: list, overall_curves: dict) -> dict:
    """Write table.csv, table.md and one PNG per figure kind into ``out``; return ``{kind: path}``."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": write_bytes_atomic(out / "table.csv", table.to_csv(index=False).encode()),
             "markdown": write_bytes_atomic(out / "table.md", markdown.encode())}
    colours = {name: f"C{k % 10}" for k, name in enumerate(outputs)}
    panel_curves = [overall_curves if label == ALL else curves_of(pooled, outputs, frames)
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


def prepare_dir(out_dir) -> Path:
    """Check ``out_dir`` before the (long) run; it is created only when files are written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a directory")
    return out
