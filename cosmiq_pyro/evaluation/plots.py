"""Figures for CR-mask evaluation: reliability, ROC, risk-coverage, error vs uncertainty, maps.

Each curve function takes either a result from `cosmiq_pyro.evaluation.metrics` or the arrays it would
compute one from, draws on ``ax`` (a new figure when None) and returns the axes. Calling one
repeatedly on the same axes with different ``label=`` overlays models for a comparison::

    ax = plot_roc(roc_curve(p_vi, y), label="VI")
    plot_roc(roc_curve(p_det, y), ax=ax, label="deterministic")

`plot_sigma_history` draws the posterior width of every layer over a Bayesian fit; the image
maps of a `Prediction` are `cosmiq_pyro.evaluation.plot_maps.plot_maps`.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np

from . import metrics
from ..utils.deprecation import moved_names

__all__ = ["plot_reliability", "plot_roc", "plot_risk_coverage", "plot_error_vs_uncertainty",
           "plot_sigma_history"]

#: Moved in 0.2.0: ``plot_maps`` lives in `cosmiq_pyro.evaluation.plot_maps`.
__getattr__ = moved_names(__name__, {"plot_maps": ("cosmiq_pyro.evaluation.plot_maps", "plot_maps")})

_GID_DIAGONAL = "cosmiq-perfect-calibration"
_GID_FPR_MARK = "cosmiq-fpr-mark"


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
    return ax


def _result(data, cls, compute, arrays: dict, what: str):
    """``data`` if it is already a ``cls`` result, else ``compute(data, **arrays)``."""
    if isinstance(data, cls):
        given = [k for k, v in arrays.items() if v is not None]
        if given:
            raise TypeError(f"{what}: pass either a {cls.__name__} or arrays, not both "
                            f"(got a {cls.__name__} and {', '.join(given)})")
        return data
    missing = [k for k, v in arrays.items() if v is None]
    if missing:
        raise TypeError(f"{what}: first argument is not a {cls.__name__}, so it is taken as p "
                        f"and {', '.join(missing)} must be given")
    return compute(data, *arrays.values())


def _has_gid(ax, gid: str) -> bool:
    return any(artist.get_gid() == gid for artist in ax.get_lines())


def _legend(ax, loc: str = "best") -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc=loc)


def _check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def plot_reliability(p_or_curve, y=None, *, n_bins: int = 15, strategy: str = "uniform",
                     ignore=None, ax=None, label: Optional[str] = None, scale: str = "linear",
                     **plot_kw):
    """Reliability diagram: observed CR fraction against mean predicted probability per bin.

    Parameters
    ----------
    p_or_curve : ReliabilityCurve or array_like
        A `metrics.reliability_curve` result, or probabilities p (then ``y`` is required).
    y : array_like, optional
        Truth mask when ``p_or_curve`` is p.
    n_bins, strategy, ignore
        Passed to `metrics.reliability_curve` when arrays are given.
    ax : matplotlib.axes.Axes, optional
    label : str, optional
        Legend entry; the ECE is appended.
    scale : {'linear', 'log'}
        'log' spreads the bins near p = 0 where almost all pixels of a CR mask lie (bins with
        no CR are not drawn on log axes).
    **plot_kw
        Passed to ``ax.plot`` (colour, marker, ...).

    Returns
    -------
    matplotlib.axes.Axes
    """
    _check_choice(scale, "scale", ("linear", "log"))
    curve = _result(p_or_curve, metrics.ReliabilityCurve,
                    lambda p, yy: metrics.reliability_curve(p, yy, n_bins, strategy, ignore=ignore),
                    {"y": y}, "plot_reliability")
    ax = _axes(ax)
    if not _has_gid(ax, _GID_DIAGONAL):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration",
                gid=_GID_DIAGONAL, zorder=1)
    full = curve.count > 0
    text = f"ECE {curve.ece:.2g}"
    plot_kw.setdefault("marker", "o")
    ax.plot(curve.mean_p[full], curve.frac_pos[full],
            label=f"{label} ({text})" if label else text, **plot_kw)
    if scale == "log":
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    ax.set_xlabel("Predicted CR probability (bin mean)")
    ax.set_ylabel("Observed CR fraction")
    ax.set_title(f"Reliability ({curve.edges.size - 1} {curve.strategy} bins)")
    _legend(ax)
    return ax


def plot_roc(p_or_roc, y=None, *, thresholds=None, dilate: int = 0, ignore=None, ax=None,
             label: Optional[str] = None, dilated: str = "paper", mark_fpr_pct=(0.05, 0.5),
             **plot_kw):
    """ROC curve, TPR (%) against FPR (%) on a log FPR axis as in deepCR's paper.

    Parameters
    ----------
    p_or_roc : RocCurve or array_like
        A `metrics.roc_curve` result, or probabilities p (then ``y`` is required).
    y : array_like, optional
        Truth mask when ``p_or_roc`` is p.
    thresholds, dilate, ignore
        Passed to `metrics.roc_curve` when arrays are given.
    ax : matplotlib.axes.Axes, optional
    label : str, optional
        Legend entry for this model.
    dilated : {'paper', 'true', 'both', 'none'}
        Which dilated curve to add when the result has one, in the undilated curve's colour:
        'paper' (dashed) = dilated TPR against the undilated FPR (deepCR paper convention),
        'true' (dotted) = dilated TPR against the dilated mask's own FPR.
    mark_fpr_pct : sequence of float
        FPRs (%) marked by thin vertical lines (deepCR's Table 2 uses 0.05 % and 0.5 %).
    **plot_kw
        Passed to ``ax.plot`` for the undilated curve.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _check_choice(dilated, "dilated", ("paper", "true", "both", "none"))
    roc = _result(p_or_roc, metrics.RocCurve,
                  lambda p, yy: metrics.roc_curve(p, yy, thresholds, dilate, ignore=ignore),
                  {"y": y}, "plot_roc")
    ax = _axes(ax)
    name = label or "model"
    # points at FPR = 0 have no place on a log axis: the curve starts at the first FPR > 0
    shown = roc.fpr_pct > 0
    (line,) = ax.plot(roc.fpr_pct[shown], roc.tpr_pct[shown], label=name, **plot_kw)
    color = line.get_color()
    if roc.dilate and dilated in ("paper", "both"):
        ax.plot(roc.fpr_pct[shown], roc.tpr_dilated_pct[shown], color=color, ls="--",
                label=f"{name}, dilated r={roc.dilate} (vs undilated FPR, deepCR paper)")
    if roc.dilate and dilated in ("true", "both"):
        shown_d = roc.fpr_dilated_pct > 0
        ax.plot(roc.fpr_dilated_pct[shown_d], roc.tpr_dilated_pct[shown_d], color=color, ls=":",
                label=f"{name}, dilated r={roc.dilate} (true dilated FPR)")
    if not _has_gid(ax, _GID_FPR_MARK):
        for f in mark_fpr_pct:
            ax.axvline(f, color="0.75", lw=0.8, ls="-", gid=_GID_FPR_MARK, zorder=0)
    ax.set_xscale("log")
    ax.set_xlim(right=100)
    ax.set_ylim(0, 100.5)
    ax.set_xlabel("False positive rate (%)")
    ax.set_ylabel("True positive rate (%)")
    ax.set_title("ROC (pixels flagged where p > threshold)")
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax, "lower right")
    return ax


def _oracle_risk(coverage: np.ndarray, n: int, m: int) -> np.ndarray:
    """Selective risk of the ideal ranking (right pixels first) at each coverage."""
    kept = coverage * n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(kept > n - m, (kept - (n - m)) / kept, 0.0)


def plot_risk_coverage(p_or_rc, y=None, u=None, *, threshold: float = 0.5, ignore=None, ax=None,
                       label: Optional[str] = None, oracle: bool = True, **plot_kw):
    """Risk-coverage curve: error rate (%) of the most certain pixels against their share (%).

    Parameters
    ----------
    p_or_rc : RiskCoverage or array_like
        A `metrics.risk_coverage` result, or probabilities p (then ``y`` and ``u`` are required).
    y, u : array_like, optional
        Truth mask and uncertainty when ``p_or_rc`` is p.
    threshold, ignore
        Passed to `metrics.risk_coverage` when arrays are given.
    ax : matplotlib.axes.Axes, optional
    label : str, optional
        Legend entry; AURC and E-AURC (the mean risk, in % like the y axis) are appended.
    oracle : bool
        Also draw (thin, dashed, same colour) the ideal ranking's curve for this model's errors.
    **plot_kw
        Passed to ``ax.plot``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    rc = _result(p_or_rc, metrics.RiskCoverage,
                 lambda p, yy, uu: metrics.risk_coverage(p, yy, uu, threshold, ignore=ignore),
                 {"y": y, "u": u}, "plot_risk_coverage")
    ax = _axes(ax)
    text = f"AURC {100 * rc.aurc:.3g} %, E-AURC {100 * rc.e_aurc:.3g} %"
    cov = np.concatenate([[0.0], rc.coverage])
    risk = np.concatenate([[rc.risk[0]], rc.risk])
    (line,) = ax.plot(100 * cov, 100 * risk, label=f"{label} ({text})" if label else text,
                      **plot_kw)
    if oracle:
        grid = np.linspace(0, 1, 1001)[1:]
        ax.plot(100 * grid, 100 * _oracle_risk(grid, rc.n, rc.n_errors), color=line.get_color(),
                lw=0.8, ls="--", label=f"{label + ' ' if label else ''}oracle ranking")
    ax.set_xlim(0, 100)
    # fixed limits stop autoscaling: recompute the top over every curve on the axes, so a model
    # overlaid later with a higher risk still fits
    top = max((np.nanmax(ln.get_ydata()) for ln in ax.get_lines() if len(ln.get_ydata())),
              default=0.0)
    ax.set_ylim(0, 1.05 * top if top > 0 else 1.0)
    ax.set_xlabel("Coverage: most certain pixels kept (%)")
    ax.set_ylabel("Risk: error rate of kept pixels (%)")
    ax.set_title("Risk-coverage (lower is better)")
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return ax


def plot_error_vs_uncertainty(p_or_binned, y=None, u=None, *, n_bins: int = 10,
                              strategy: str = "quantile", threshold: float = 0.5, ignore=None,
                              ax=None, label: Optional[str] = None,
                              u_label: str = "Uncertainty (nats)", yscale: str = "log", **plot_kw):
    """Error rate (%) of the prediction in bins of uncertainty, against the bins' mean u.

    Parameters
    ----------
    p_or_binned : ErrorVsUncertainty or array_like
        A `metrics.error_vs_uncertainty` result, or probabilities p (then ``y`` and ``u`` are
        required).
    y, u : array_like, optional
        Truth mask and uncertainty when ``p_or_binned`` is p.
    n_bins, strategy, threshold, ignore
        Passed to `metrics.error_vs_uncertainty` when arrays are given.
    ax : matplotlib.axes.Axes, optional
    label : str, optional
        Legend entry.
    u_label : str
        x-axis label: name and unit of u.
    yscale : {'log', 'linear'}
        Error rates span decades between certain and uncertain pixels; on 'log' bins with no
        error are not drawn.
    **plot_kw
        Passed to ``ax.plot``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _check_choice(yscale, "yscale", ("log", "linear"))
    binned = _result(p_or_binned, metrics.ErrorVsUncertainty,
                     lambda p, yy, uu: metrics.error_vs_uncertainty(
                         p, yy, uu, n_bins, strategy, threshold, ignore=ignore),
                     {"y": y, "u": u}, "plot_error_vs_uncertainty")
    ax = _axes(ax)
    full = binned.count > 0
    rate_pct = 100 * binned.error_rate[full]
    if yscale == "log":  # a gap in the line, not a drop to -inf, for bins without errors
        rate_pct = np.where(rate_pct > 0, rate_pct, np.nan)
    plot_kw.setdefault("marker", "o")
    ax.plot(binned.mean_u[full], rate_pct, label=label, **plot_kw)
    ax.set_yscale(yscale)
    ax.set_xlabel(f"{u_label}, bin mean")
    ax.set_ylabel("Error rate (%)")
    ax.set_title(f"Error rate vs uncertainty ({binned.count.size} {binned.strategy} bins)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)
    return ax


def plot_sigma_history(history, *, key: str = "sigma_median", ax=None, weights_only: bool = True):
    """Median posterior standard deviation of every layer over the epochs of a Bayesian fit.

    Parameters
    ----------
    history : dict or FitResult
        A fit history (``FitResult.history``) whose ``"epochs"`` records hold ``key``: a dict
        ``{site: median sigma}`` per weight site (``"inc.conv1.weight"``, ...), as `fit_svi`
        records after every epoch.  Epoch 0 (the initial guide), when present as
        ``history["sigma_init"]``, is drawn too.
    key : str
        Name of the per-epoch record.
    ax : matplotlib.axes.Axes, optional
    weights_only : bool
        Draw the weight sites only (biases are a few numbers per layer).

    Returns
    -------
    matplotlib.axes.Axes
        One line per site, log-scaled sigma against the epoch.
    """
    history = getattr(history, "history", history)
    if not isinstance(history, dict) or "epochs" not in history:
        raise TypeError("history must be a fit history dict (FitResult.history) with an 'epochs' list")
    records = [r for r in history["epochs"] if key in r]
    if not records:
        raise ValueError(f"history has no epoch with {key!r}; it comes from fit_svi of a Bayesian model")
    epochs = [r["epoch"] for r in records]
    series = {site: [r[key][site] for r in records] for site in records[0][key]}
    initial = history.get("init", {}).get(key)
    if initial is not None:
        epochs = [0] + epochs
        series = {site: [initial[site]] + v for site, v in series.items()}
    ax = _axes(ax)
    for site, values in series.items():
        if weights_only and not site.endswith("weight"):
            continue
        ax.plot(epochs, values, marker="o", markersize=3, label=site.removesuffix(".weight"))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("median posterior sigma of the layer")
    ax.set_title("Posterior width per layer")
    _legend(ax)
    return ax
