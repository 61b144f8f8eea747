"""Pixel-level metrics for CR masks: calibration, detection and uncertainty quality.

Pure numpy: every function takes arrays, never models, so anything can evaluate anything.
All functions accept arrays of any one shape (``(H, W)``, ``(N, H, W)``, flat):

- ``p``: CR probability per pixel, finite, in [0, 1] (float32 is fastest);
- ``y``: truth CR mask, bool or 0/1;
- ``u``: an uncertainty per pixel (e.g. entropy or epistemic in nats), finite, larger = less sure;
- ``ignore`` (keyword, optional): bool or 0/1, True for pixels excluded from every metric
  (bad pixels, saturation, DQ flags).

Conventions
-----------
- A pixel is *flagged* as a CR when ``p > threshold`` (deepCR's ``clean`` and
  ``evaluate.roc`` rule, and ``Prediction.mask``); "prediction at 0.5" means ``p > 0.5``.
- Detection rates (TPR, FPR) are in percent, as in deepCR; ``tpr_at_fpr`` takes its FPR
  targets as fractions (``0.0005`` = 0.05 %). Calibration and risk numbers are fractions.
- Ties are never split: pixels with equal scores are on the same side of every threshold.

Every metric handles 1e8 pixels in seconds (``benchmarks/bench_metrics.py``): binned
statistics use ``bincount`` in chunks, ranking statistics sort each class's scores once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

__all__ = [
    "brier", "nll", "ece", "reliability_curve", "ReliabilityCurve",
    "roc_curve", "RocCurve", "tpr_at_fpr", "TprAtFpr", "roc_auc",
    "risk_coverage", "RiskCoverage", "aurc", "e_aurc",
    "error_vs_uncertainty", "ErrorVsUncertainty", "error_detection_auroc",
]

_CHUNK = 1 << 20  # pixels per chunk in streamed reductions (8 MB of float64 temporaries)


# --------------------------------------------------------------------------- validation

def _as_numeric(x, name: str) -> np.ndarray:
    if x is None:
        raise TypeError(f"{name} is required, got None")
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric or bool array, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} is empty; expected at least one pixel")
    return a


def _check_prob(p, name: str = "p") -> np.ndarray:
    """Float array (float32 kept, ints/bools -> float32) with every value finite in [0, 1]."""
    a = _as_numeric(p, name)
    if a.dtype.kind != "f" or a.dtype.itemsize < 4:
        a = a.astype(np.float32)
    lo, hi = a.min(), a.max()
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"{name} contains NaN; expected finite probabilities in [0, 1]")
    if not (lo >= 0 and hi <= 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1]; found values in [{lo}, {hi}]")
    return a


def _check_binary(y, name: str) -> np.ndarray:
    """Bool array from a bool or 0/1 array."""
    a = _as_numeric(y, name)
    if a.dtype.kind == "b":
        return a
    if not np.all((a == 0) | (a == 1)):
        raise ValueError(f"{name} must be bool or hold only 0 and 1")
    return a != 0


def _check_finite(u, name: str) -> np.ndarray:
    a = _as_numeric(u, name)
    if a.dtype.kind != "f" or a.dtype.itemsize < 4:
        a = a.astype(np.float32)
    lo, hi = a.min(), a.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} must be finite everywhere (found NaN or inf)")
    return a


def _check_shapes(**arrays: Optional[np.ndarray]) -> None:
    named = [(k, v) for k, v in arrays.items() if v is not None]
    ref_name, ref = named[0]
    for k, v in named[1:]:
        if v.shape != ref.shape:
            raise ValueError(f"{k} has shape {v.shape} but {ref_name} has shape {ref.shape}; "
                             "all inputs must have the same shape")


def _check_n_bins(n_bins) -> int:
    if isinstance(n_bins, (bool, np.bool_)) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def _check_strategy(strategy) -> str:
    if strategy not in ("uniform", "quantile"):
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    return strategy


def _check_threshold(threshold, name: str = "threshold") -> float:
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"{name} must be finite, got {threshold!r}")
    return t


def _check_dilate(dilate, shape) -> int:
    if isinstance(dilate, (bool, np.bool_)) or not isinstance(dilate, (int, np.integer)) or dilate < 0:
        raise ValueError(f"dilate must be a non-negative integer (disk radius in pixels), got {dilate!r}")
    if dilate > 0 and len(shape) not in (2, 3):
        raise ValueError(f"dilate > 0 needs p of shape (H, W) or (N, H, W) frames; got shape {shape}")
    return int(dilate)


def _valid(ignore: Optional[np.ndarray], *arrays: np.ndarray) -> tuple:
    """Flatten ``arrays`` and drop ignored pixels; each result is 1-D."""
    if ignore is None:
        return tuple(a.ravel() for a in arrays)
    keep = ~ignore.ravel()
    if not keep.any():
        raise ValueError("ignore excludes every pixel; nothing left to evaluate")
    return tuple(a.ravel()[keep] for a in arrays)


def _prepare(p, y, u=None, ignore=None, *, u_name: str = "u"):
    """Validate and return flat valid ``(p, y)`` or ``(p, y, u)``."""
    p = _check_prob(p, "p")
    y = _check_binary(y, "y")
    uu = None if u is None else _check_finite(u, u_name)
    ig = None if ignore is None else _check_binary(ignore, "ignore")
    _check_shapes(p=p, y=y, **{u_name: uu}, ignore=ig)
    if uu is None:
        return _valid(ig, p, y)
    return _valid(ig, p, y, uu)


# --------------------------------------------------------------------------- calibration

def _chunked_sum(fn, *arrays: np.ndarray) -> float:
    total = 0.0
    for s in range(0, arrays[0].size, _CHUNK):
        total += float(fn(*(a[s:s + _CHUNK] for a in arrays)))
    return total


def brier(p, y, *, ignore=None) -> float:
    r"""Brier score, the mean squared error of the probabilities.

    .. math:: \mathrm{Brier} = \frac{1}{N}\sum_i (p_i - y_i)^2

    over the N pixels not ignored. 0 is perfect; always predicting the base rate b gives b(1-b).

    Parameters
    ----------
    p : array_like
        CR probabilities in [0, 1].
    y : array_like
        Truth mask, bool or 0/1, same shape as ``p``.
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    float
    """
    p, y = _prepare(p, y, ignore=ignore)
    return _chunked_sum(lambda pc, yc: np.square(pc.astype(np.float64) - yc).sum(), p, y) / p.size


def nll(p, y, eps: float = 1e-7, *, ignore=None) -> float:
    r"""Mean negative log-likelihood (binary cross-entropy) in nats.

    .. math:: \mathrm{NLL} = -\frac{1}{N}\sum_i \left[y_i \ln \tilde p_i
              + (1 - y_i)\ln(1 - \tilde p_i)\right],
              \qquad \tilde p_i = \mathrm{clip}(p_i, \varepsilon, 1 - \varepsilon)

    computed in float64. The clipping bounds one confidently wrong pixel's cost at
    :math:`-\ln\varepsilon` (16.1 nats for the default).

    Parameters
    ----------
    p, y : array_like
        Probabilities in [0, 1] and truth mask (bool or 0/1) of the same shape.
    eps : float
        Clipping margin, in (0, 0.5).
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    float
    """
    eps = float(eps)
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps!r}")
    p, y = _prepare(p, y, ignore=ignore)

    def chunk(pc, yc):
        q = np.clip(pc.astype(np.float64), eps, 1 - eps)
        return -np.log(np.where(yc, q, 1 - q)).sum()

    return _chunked_sum(chunk, p, y) / p.size


def _quantiles(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(x, q)`` (linear interpolation) from one float sort of x.

    Sorting a float32 copy is ~3x faster than ``np.quantile`` on 1e8 pixels.
    """
    s = np.sort(x)
    h = (s.size - 1) * np.asarray(q, np.float64)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, s.size - 1)
    a, b = s[lo].astype(np.float64), s[hi].astype(np.float64)
    return a + (h - lo) * (b - a)


def _bin_edges(x: np.ndarray, n_bins: int, strategy: str, lo: float, hi: float) -> np.ndarray:
    if strategy == "uniform":
        return np.linspace(lo, hi, n_bins + 1)
    return _quantiles(x, np.linspace(0.0, 1.0, n_bins + 1))


def _bin_index(xc: np.ndarray, edges: np.ndarray, uniform: bool) -> np.ndarray:
    """Bin k holds ``edges[k] <= x < edges[k+1]``; the last bin also holds ``x == edges[-1]``."""
    n = edges.size - 1
    lo, hi = edges[0], edges[-1]
    if uniform and hi > lo:
        # floor((x - lo) / (hi - lo) * n) in float64: for p in [0, 1] and float32 input,
        # p * n is exact, so bin edges are exactly k / n.
        scaled = (xc.astype(np.float64) - lo) * (n / (hi - lo))
        idx = scaled.astype(np.intp)
        return np.clip(idx, 0, n - 1, out=idx)
    inner = edges[1:-1]
    if n > 64:
        return np.searchsorted(inner, xc, side="right")
    # index = number of inner edges <= x; vectorised comparisons beat a binary search per pixel
    idx = np.zeros(xc.size, np.intp)
    for e in inner:
        idx += xc >= e
    return idx


def _binned_stats(x: np.ndarray, b: np.ndarray, edges: np.ndarray, uniform: bool):
    """Per bin of ``x``: pixel count, sum of x (float64), count of True in ``b``."""
    n = edges.size - 1
    count = np.zeros(n, np.int64)
    sum_x = np.zeros(n, np.float64)
    n_true = np.zeros(n, np.int64)
    for s in range(0, x.size, _CHUNK):
        xc, bc = x[s:s + _CHUNK], b[s:s + _CHUNK]
        idx = _bin_index(xc, edges, uniform)
        count += np.bincount(idx, minlength=n)
        sum_x += np.bincount(idx, weights=xc, minlength=n)
        n_true += np.bincount(idx[bc], minlength=n)
    return count, sum_x, n_true


@dataclass(frozen=True, repr=False)
class ReliabilityCurve:
    """Binned calibration of CR probabilities (from `reliability_curve`).

    Unpacks as ``mean_p, frac_pos, count = reliability_curve(p, y)``.

    Attributes
    ----------
    mean_p : ndarray, (n_bins,)
        Mean predicted probability (confidence) in each bin; NaN for empty bins.
    frac_pos : ndarray, (n_bins,)
        Observed CR frequency in each bin; NaN for empty bins.
    count : ndarray of int, (n_bins,)
        Pixels in each bin.
    edges : ndarray, (n_bins + 1,)
        Bin k holds ``edges[k] <= p < edges[k+1]`` (the last bin includes its right edge).
    strategy : str
        'uniform' or 'quantile'.
    """

    mean_p: np.ndarray
    frac_pos: np.ndarray
    count: np.ndarray
    edges: np.ndarray
    strategy: str

    @property
    def n(self) -> int:
        """Number of pixels evaluated."""
        return int(self.count.sum())

    @property
    def ece(self) -> float:
        r"""Expected calibration error :math:`\sum_k |B_k|/N \, |\bar y_k - \bar p_k|`."""
        full = self.count > 0
        w = self.count[full] / self.n
        return float(np.sum(w * np.abs(self.frac_pos[full] - self.mean_p[full])))

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.mean_p, self.frac_pos, self.count))

    def to_dict(self) -> dict:
        return {"mean_p": self.mean_p, "frac_pos": self.frac_pos, "count": self.count,
                "edges": self.edges, "strategy": self.strategy, "ece": self.ece}

    def __repr__(self) -> str:
        rows = [f"ReliabilityCurve({self.edges.size - 1} {self.strategy} bins, N={self.n}, "
                f"ECE={self.ece:.4g})",
                f"  {'bin':<18}  {'mean p':>9}  {'frac CR':>9}  {'pixels':>11}"]
        for k in range(self.count.size):
            rows.append(f"  [{self.edges[k]:.4f}, {self.edges[k + 1]:.4f})  {self.mean_p[k]:9.4g}  "
                        f"{self.frac_pos[k]:9.4g}  {self.count[k]:11d}")
        return "\n".join(rows)


def reliability_curve(p, y, n_bins: int = 15, strategy: str = "uniform", *,
                      ignore=None) -> ReliabilityCurve:
    r"""Reliability diagram data: mean confidence, observed frequency and count per bin.

    Bins are on the positive-class probability p (not on max(p, 1-p)).
    ``strategy='uniform'``: n_bins equal-width bins on [0, 1], bin k = [k/n, (k+1)/n), and
    p = 1.0 goes into the last bin. ``strategy='quantile'``: edges at the quantiles
    0, 1/n, ..., 1 of p; with heavy ties some quantile bins are empty (count 0, NaN means).

    For bin :math:`B_k`: ``mean_p`` = :math:`\bar p_k = \frac{1}{|B_k|}\sum_{i\in B_k} p_i`,
    ``frac_pos`` = :math:`\bar y_k = \frac{1}{|B_k|}\sum_{i\in B_k} y_i`, ``count`` = :math:`|B_k|`.

    Parameters
    ----------
    p, y : array_like
        Probabilities in [0, 1] and truth mask (bool or 0/1) of the same shape.
    n_bins : int
        Number of bins (15 as in the prototype).
    strategy : {'uniform', 'quantile'}
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    ReliabilityCurve
        Unpacks as ``(mean_p, frac_pos, count)``; ``.ece`` gives the ECE.
    """
    n_bins = _check_n_bins(n_bins)
    strategy = _check_strategy(strategy)
    p, y = _prepare(p, y, ignore=ignore)
    edges = _bin_edges(p, n_bins, strategy, 0.0, 1.0)
    count, sum_p, n_pos = _binned_stats(p, y, edges, strategy == "uniform")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / count, np.nan)
        frac_pos = np.where(count > 0, n_pos / count, np.nan)
    return ReliabilityCurve(mean_p, frac_pos, count, edges, strategy)


def ece(p, y, n_bins: int = 15, strategy: str = "uniform", *, ignore=None) -> float:
    r"""Expected calibration error of the positive-class (CR) probability.

    .. math:: \mathrm{ECE} = \sum_{k=1}^{K} \frac{|B_k|}{N}\,
              \left|\frac{1}{|B_k|}\sum_{i\in B_k} y_i - \frac{1}{|B_k|}\sum_{i\in B_k} p_i\right|

    with K = ``n_bins`` bins on p (see `reliability_curve`; default 15 equal-width bins,
    p = 1.0 in the last bin). This is the ECE of the CR probability p itself, *not* the
    max-confidence variant that bins max(p, 1-p) against accuracy: for a mask where
    almost every pixel is a confident "no CR", the two differ.

    Parameters
    ----------
    p, y : array_like
        Probabilities in [0, 1] and truth mask (bool or 0/1) of the same shape.
    n_bins : int
    strategy : {'uniform', 'quantile'}
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    float
    """
    return reliability_curve(p, y, n_bins, strategy, ignore=ignore).ece


# --------------------------------------------------------------------------- detection

def _disk_offsets(radius: int) -> list:
    """Offsets (dy, dx) of skimage's ``disk(radius)``: dy^2 + dx^2 <= radius^2."""
    r = np.arange(-radius, radius + 1)
    return [(int(dy), int(dx)) for dy in r for dx in r if dy * dy + dx * dx <= radius * radius]


def _dilated_score(p: np.ndarray, ignore: Optional[np.ndarray], radius: int) -> np.ndarray:
    """Score whose threshold map equals the dilated thresholded mask.

    ``dilate(p > t and not ignore) == (q > t)`` for ``q = max over disk(radius) of p`` with
    ignored pixels set to -inf, because a pixel is in the dilated mask iff some pixel of its
    disk neighbourhood passes the threshold. Dilation runs over the last two axes only,
    so frames of an (N, H, W) stack never leak into each other; pixels outside a frame
    contribute nothing.
    """
    src = p if ignore is None else np.where(ignore, np.array(-np.inf, p.dtype), p)
    q = src.copy()
    H, W = p.shape[-2:]
    for dy, dx in _disk_offsets(radius):
        if (dy, dx) == (0, 0) or abs(dy) >= H or abs(dx) >= W:
            continue
        dst = (Ellipsis, slice(max(0, -dy), H - max(0, dy)), slice(max(0, -dx), W - max(0, dx)))
        nb = (Ellipsis, slice(max(0, dy), H + min(0, dy)), slice(max(0, dx), W + min(0, dx)))
        np.maximum(q[dst], src[nb], out=q[dst])
    return q


def _sorted_by_class(score: np.ndarray, label: np.ndarray):
    """Scores of the positive and of the negative pixels, each sorted ascending (copies)."""
    pos = score[label]
    pos.sort()
    neg = score[~label]
    neg.sort()
    return pos, neg


def _n_above(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many scores are strictly greater than each threshold."""
    return sorted_scores.size - np.searchsorted(sorted_scores, thresholds, side="right")


def _unique_of_sorted(a: np.ndarray) -> np.ndarray:
    if a.size == 0:
        return a
    keep = np.empty(a.size, bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _largest_below(sorted_arrays, values: np.ndarray) -> np.ndarray:
    """For each value, the largest element < value over all the sorted arrays (-inf if none)."""
    out = np.full(values.shape, -np.inf, values.dtype)
    for a in sorted_arrays:
        if a.size == 0:
            continue
        i = np.searchsorted(a, values, side="left")
        cand = np.where(i > 0, a[np.maximum(i - 1, 0)], -np.inf).astype(values.dtype)
        np.maximum(out, cand, out=out)
    return out


def _vertex_thresholds(sorted_arrays, event_arrays) -> np.ndarray:
    """Thresholds (rule ``score > t``, descending) holding every vertex of the ROC polylines.

    Walking t down through the distinct scores, a curve of counts (X(t), Y(t)) moves
    straight (horizontally) while t passes only scores of X's class; its direction can change
    only when t crosses a score v of Y's class (the "events"), i.e. between the thresholds v
    and the largest score below v. Those two thresholds per event, the top (nothing flagged)
    and -inf (everything flagged) give the polyline exactly, in O(events) points instead of
    one point per distinct score.
    """
    events = np.unique(np.concatenate([_unique_of_sorted(a) for a in event_arrays]))
    below = _largest_below(sorted_arrays, events)
    top = max(a[-1] for a in sorted_arrays if a.size)
    thr = np.unique(np.concatenate([events, below, np.array([top, -np.inf], events.dtype)]))
    return thr[::-1]


def _as_score_dtype(thresholds: np.ndarray, dtype) -> np.ndarray:
    """Thresholds t' in ``dtype`` with ``x > t' <=> x > t`` for every x of that dtype.

    Comparing a float32 map with float64 thresholds promotes to float64 (deepCR's
    ``pdt_mask > thresholds[i]``); rounding each t down to the largest float32 <= t keeps that
    exact result while letting searchsorted work on the float32 array without a copy.
    """
    t = np.asarray(thresholds, np.float64)
    if np.dtype(dtype) == np.float64:
        return t
    t_low = t.astype(dtype)
    above = t_low.astype(np.float64) > t
    t_low[above] = np.nextafter(t_low[above], np.array(-np.inf, dtype))
    return t_low


def _require_both(n_pos: int, n_neg: int, what: str, pos: str = "positive (CR)",
                  neg: str = "negative") -> None:
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"{what} needs both {pos} and {neg} pixels (after ignore); "
                         f"got {n_pos} and {n_neg}")


def _corners(*curves) -> np.ndarray:
    """Points to keep so each (x, y) polyline is unchanged: ends plus non-collinear points."""
    n = curves[0][0].size
    keep = np.zeros(n, bool)
    keep[[0, -1]] = True
    for x, y in curves:
        dx, dy = np.diff(x), np.diff(y)
        keep[1:-1] |= dx[:-1] * dy[1:] != dy[:-1] * dx[1:]  # int64 cross product, exact
    return keep


@dataclass(frozen=True, repr=False)
class RocCurve:
    """ROC of a per-pixel CR score (from `roc_curve`). Rates are in percent.

    Point k flags pixels with ``p > thresholds[k]``.

    Attributes
    ----------
    thresholds : ndarray
    tpr_pct, fpr_pct : ndarray
        True/false positive rates (%) of the undilated mask.
    n_pos, n_neg : int
        CR and non-CR pixels evaluated.
    dilate : int
        Disk radius (pixels) used to dilate the *predicted* mask; 0 for none.
    tpr_dilated_pct, fpr_dilated_pct : ndarray or None
        Rates (%) of the dilated predicted mask against the undilated truth at the same
        thresholds. deepCR paper convention: plot ``tpr_dilated_pct`` against ``fpr_pct``
        (dilated TPR at undilated FPR). True dilated ROC: ``tpr_dilated_pct`` against
        ``fpr_dilated_pct``.
    """

    thresholds: np.ndarray
    tpr_pct: np.ndarray
    fpr_pct: np.ndarray
    n_pos: int
    n_neg: int
    dilate: int = 0
    tpr_dilated_pct: Optional[np.ndarray] = None
    fpr_dilated_pct: Optional[np.ndarray] = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __repr__(self) -> str:
        extra = (f", dilate={self.dilate} (tpr_dilated_pct vs fpr_pct = deepCR paper convention;"
                 " vs fpr_dilated_pct = true dilated ROC)") if self.dilate else ""
        return (f"RocCurve({self.thresholds.size} points, n_pos={self.n_pos}, n_neg={self.n_neg}"
                f"{extra})")


def roc_curve(p, y, thresholds=None, dilate: int = 0, *, ignore=None,
              drop_intermediate: bool = True) -> RocCurve:
    r"""ROC curve of CR probabilities, TPR and FPR in percent (deepCR's convention).

    At threshold t a pixel is flagged when ``p > t`` (and not ignored):

    .. math:: \mathrm{TPR}(t) = 100\,\frac{\#\{p > t,\ y = 1\}}{\#\{y = 1\}}, \qquad
              \mathrm{FPR}(t) = 100\,\frac{\#\{p > t,\ y = 0\}}{\#\{y = 0\}}

    With ``dilate = r > 0`` the *predicted* mask is also dilated with skimage's ``disk(r)``
    footprint (r = 1: the 3x3 cross) per frame, then compared with the undilated truth, as
    deepCR 0.3.1's ``evaluate.roc(..., dilate=True, rad=r)`` does:
    TP = dilated prediction AND truth, FP = dilated prediction AND NOT truth. The result
    carries both the dilated TPR and the true dilated FPR; the deepCR paper reports the dilated
    TPR against the *undilated* FPR. Unlike deepCR, ignored pixels are left out of every
    count (deepCR counts them as negatives, and counts the dilated mask spilling onto them as
    false positives); ignored pixels never seed the dilation in either.

    Parameters
    ----------
    p, y : array_like
        Probabilities in [0, 1] and truth mask of the same shape; (H, W) or (N, H, W) when
        ``dilate > 0``.
    thresholds : array_like, optional
        Thresholds to evaluate, in the given order (deepCR uses
        ``np.linspace(0.001, 0.999, 500)``). Default: the exact curve, one point per distinct
        score, from ``t = max(p)`` (0 %, 0 %) down to ``t = -inf`` (100 %, 100 %).
    dilate : int
        Disk radius of the dilation, 0 for none.
    ignore : array_like, optional
        True for pixels to exclude.
    drop_intermediate : bool
        For the exact curve, return only the vertices of the polylines (undilated, and with
        ``dilate`` both dilated conventions): points inside straight segments are left out,
        the polylines are unchanged. False: one point per distinct score (slow and large on
        1e8 pixels).

    Returns
    -------
    RocCurve
    """
    p_full = _check_prob(p, "p")
    y_full = _check_binary(y, "y")
    ig = None if ignore is None else _check_binary(ignore, "ignore")
    _check_shapes(p=p_full, y=y_full, ignore=ig)
    dilate = _check_dilate(dilate, p_full.shape)
    p, y = _valid(ig, p_full, y_full)
    pos, neg = _sorted_by_class(p, y)
    _require_both(pos.size, neg.size, "roc_curve")

    qpos = qneg = None
    if dilate:
        (q,) = _valid(ig, _dilated_score(p_full, ig, dilate))
        qpos, qneg = _sorted_by_class(q, y)
        del q
    scored = [a for a in (pos, neg, qpos, qneg) if a is not None]

    if thresholds is None:
        if drop_intermediate:
            thr = _vertex_thresholds(scored, [a for a in (pos, qpos) if a is not None])
        else:
            distinct = np.unique(np.concatenate([_unique_of_sorted(a) for a in scored]))
            thr = np.concatenate([distinct[::-1], np.array([-np.inf], p.dtype)])
        thr_out = thr.astype(np.float64)
    else:
        thr_out = np.atleast_1d(np.asarray(thresholds, np.float64))
        if thr_out.ndim != 1 or np.isnan(thr_out).any():
            raise ValueError("thresholds must be a 1-D array of numbers without NaN")
        thr = _as_score_dtype(thr_out, p.dtype)

    tp, fp = _n_above(pos, thr), _n_above(neg, thr)
    tp_d = fp_d = None
    if dilate:
        tp_d, fp_d = _n_above(qpos, thr), _n_above(qneg, thr)

    if thresholds is None and drop_intermediate:
        curves = [(fp, tp)] if not dilate else [(fp, tp), (fp_d, tp_d), (fp, tp_d)]
        keep = _corners(*curves)
        thr_out, tp, fp = thr_out[keep], tp[keep], fp[keep]
        if dilate:
            tp_d, fp_d = tp_d[keep], fp_d[keep]

    n_pos, n_neg = int(pos.size), int(neg.size)
    pct_pos, pct_neg = 100.0 / n_pos, 100.0 / n_neg
    return RocCurve(
        thresholds=thr_out, tpr_pct=tp * pct_pos, fpr_pct=fp * pct_neg, n_pos=n_pos, n_neg=n_neg,
        dilate=dilate,
        tpr_dilated_pct=None if tp_d is None else tp_d * pct_pos,
        fpr_dilated_pct=None if fp_d is None else fp_d * pct_neg)


@dataclass(frozen=True, repr=False)
class TprAtFpr:
    """Best TPR reachable under FPR targets (from `tpr_at_fpr`). Rates in percent.

    Attributes
    ----------
    fpr_target : ndarray
        Targets as fractions (0.0005 = 0.05 %).
    threshold : ndarray
        The operating point flags ``p > threshold``; -inf when every pixel may be flagged.
    tpr_pct, fpr_pct : ndarray
        TPR and achieved FPR (%) at ``threshold`` (FPR <= target; lower with ties).
    dilate : int
        Disk radius of the dilated predicted mask; 0 for none.
    tpr_dilated_pct : ndarray or None
        deepCR paper convention: TPR of the dilated mask at ``threshold`` (set by the
        *undilated* FPR).
    threshold_dilated, tpr_dilated_true_pct, fpr_dilated_pct : ndarray or None
        True dilated convention: threshold chosen so that the dilated mask's own FPR is
        within the target, with its TPR and FPR.
    """

    fpr_target: np.ndarray
    threshold: np.ndarray
    tpr_pct: np.ndarray
    fpr_pct: np.ndarray
    dilate: int = 0
    tpr_dilated_pct: Optional[np.ndarray] = None
    threshold_dilated: Optional[np.ndarray] = None
    tpr_dilated_true_pct: Optional[np.ndarray] = None
    fpr_dilated_pct: Optional[np.ndarray] = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __repr__(self) -> str:
        head = f"  {'FPR target':>10}  {'TPR %':>7}  {'FPR %':>8}  {'threshold':>10}"
        if self.dilate:
            head += f"  {'TPR dil % (paper)':>17}  {'TPR dil % (true)':>16}"
        rows = [f"TprAtFpr(dilate={self.dilate})", head]
        for k, t in enumerate(self.fpr_target):
            row = (f"  {100 * t:>9.4g}%  {self.tpr_pct[k]:7.3f}  {self.fpr_pct[k]:8.4f}  "
                   f"{self.threshold[k]:10.4g}")
            if self.dilate:
                row += f"  {self.tpr_dilated_pct[k]:17.3f}  {self.tpr_dilated_true_pct[k]:16.3f}"
            rows.append(row)
        return "\n".join(rows)


def _allowed_fp(targets: np.ndarray, n_neg: int) -> np.ndarray:
    """Largest integer m with m / n_neg <= target, for each target (float-exact)."""
    m = np.floor(targets * n_neg).astype(np.int64)
    m = np.where((m + 1) / n_neg <= targets, m + 1, m)
    m = np.where(m / n_neg > targets, m - 1, m)
    return np.clip(m, 0, n_neg)


def _best_threshold(neg_sorted: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Lowest threshold t (rule ``score > t``) whose FP count is within each target.

    With m false positives allowed, t must not let through the (m+1)-th largest negative,
    so t = that score; every tie of it is excluded with it (ties cannot be split).
    """
    n_neg = neg_sorted.size
    m = _allowed_fp(targets, n_neg)
    thr = np.full(targets.shape, -np.inf, neg_sorted.dtype)
    ok = m < n_neg
    thr[ok] = neg_sorted[n_neg - 1 - m[ok]]
    return thr


def tpr_at_fpr(p, y, fpr=(0.0005, 0.005), dilate: int = 0, *, ignore=None) -> TprAtFpr:
    r"""Largest TPR reachable with FPR at most each target, exactly.

    Over all thresholds t (rule ``p > t``):

    .. math:: \mathrm{TPR}^*(\alpha) = \max_t \{\mathrm{TPR}(t) : \mathrm{FPR}(t) \le \alpha\}

    With :math:`n_0` negatives, :math:`m = \lfloor \alpha n_0 \rfloor` false positives are
    allowed; the best threshold is the (m+1)-th largest negative score, so pixels tied with
    it are all excluded (a threshold cannot split tied scores) and the achieved FPR may be
    below the target. deepCR's Table 2 quotes TPR at 0.05 % and 0.5 % FPR (the defaults).

    Parameters
    ----------
    p, y : array_like
        Probabilities in [0, 1] and truth mask of the same shape.
    fpr : float or sequence of float
        FPR targets as fractions in [0, 1].
    dilate : int
        Disk radius for the dilated predicted mask (see `roc_curve`), 0 for none. Gives the
        paper convention (dilated TPR at the threshold set by the undilated FPR) and the true
        dilated convention (threshold set by the dilated mask's own FPR).
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    TprAtFpr
    """
    targets = np.atleast_1d(np.asarray(fpr, np.float64))
    if targets.ndim != 1 or not np.all((targets >= 0) & (targets <= 1)):
        raise ValueError(f"fpr must be fractions in [0, 1] (0.0005 = 0.05 %), got {fpr!r}")
    p_full = _check_prob(p, "p")
    y_full = _check_binary(y, "y")
    ig = None if ignore is None else _check_binary(ignore, "ignore")
    _check_shapes(p=p_full, y=y_full, ignore=ig)
    dilate = _check_dilate(dilate, p_full.shape)
    p, y = _valid(ig, p_full, y_full)
    pos, neg = _sorted_by_class(p, y)
    _require_both(pos.size, neg.size, "tpr_at_fpr")
    n_pos, n_neg = pos.size, neg.size
    thr = _best_threshold(neg, targets)
    tpr = 100.0 * _n_above(pos, thr) / n_pos
    fpr_pct = 100.0 * _n_above(neg, thr) / n_neg
    extra = {}
    if dilate:
        (q,) = _valid(ig, _dilated_score(p_full, ig, dilate))
        del pos, neg
        qpos, qneg = _sorted_by_class(q, y)
        thr_d = _best_threshold(qneg, targets)
        extra = dict(
            tpr_dilated_pct=100.0 * _n_above(qpos, thr) / n_pos,
            threshold_dilated=thr_d.astype(np.float64),
            tpr_dilated_true_pct=100.0 * _n_above(qpos, thr_d) / n_pos,
            fpr_dilated_pct=100.0 * _n_above(qneg, thr_d) / n_neg)
    return TprAtFpr(fpr_target=targets, threshold=thr.astype(np.float64), tpr_pct=tpr,
                    fpr_pct=fpr_pct, dilate=dilate, **extra)


def _auc_midrank(score: np.ndarray, label: np.ndarray) -> float:
    r"""P(score of a positive > score of a negative) + P(tie) / 2 (Mann-Whitney U / n1 n0).

    Only the larger class is sorted; the smaller one is located in it by binary search.
    """
    n1 = int(label.sum())
    n0 = label.size - n1
    pos, neg = score[label], score[~label]
    if n1 <= n0:
        neg.sort()
        # below + ties/2 for each positive, doubled to stay in integers
        twice = (np.searchsorted(neg, pos, "left").sum(dtype=np.int64)
                 + np.searchsorted(neg, pos, "right").sum(dtype=np.int64))
    else:
        pos.sort()
        # for each negative: positives above + ties/2 = n1 - (below + below_or_equal)/2
        twice = (2 * n1 * n0 - np.searchsorted(pos, neg, "left").sum(dtype=np.int64)
                 - np.searchsorted(pos, neg, "right").sum(dtype=np.int64))
    return float(twice) / (2.0 * n1 * n0)


def roc_auc(p, y, *, ignore=None) -> float:
    r"""Area under the ROC curve, exact, with ties counted as half.

    .. math:: \mathrm{AUC} = \frac{1}{n_1 n_0}\sum_{i: y_i=1}\sum_{j: y_j=0}
              \left[\mathbb 1(p_i > p_j) + \tfrac12 \mathbb 1(p_i = p_j)\right]

    equal to the Mann-Whitney U statistic over :math:`n_1 n_0`, and to the trapezoidal area
    under the exact `roc_curve`.

    Parameters
    ----------
    p, y : array_like
        Probabilities in [0, 1] and truth mask of the same shape.
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    float
        In [0, 1].
    """
    p, y = _prepare(p, y, ignore=ignore)
    n1 = int(y.sum())
    _require_both(n1, y.size - n1, "roc_auc")
    return _auc_midrank(p, y)


# --------------------------------------------------------------------------- uncertainty

_H_TABLE_MAX = 1024
_H_TABLE = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, _H_TABLE_MAX + 1))])
_EULER_GAMMA = 0.57721566490153286


def _harmonic_tail(x: np.ndarray) -> np.ndarray:
    """H_x - ln x - gamma by its asymptotic series (error < 1e-25 for x > 1024)."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv / 2 - inv2 / 12 + inv2 * inv2 / 120 - inv2 * inv2 * inv2 / 252


def _harmonic(n: np.ndarray) -> np.ndarray:
    """Harmonic numbers H_n = sum_{i=1}^n 1/i for integer arrays n >= 0."""
    n = np.asarray(n, np.int64)
    out = np.empty(n.shape, np.float64)
    small = n <= _H_TABLE_MAX
    out[small] = _H_TABLE[n[small]]
    x = n[~small].astype(np.float64)
    out[~small] = np.log(x) + _EULER_GAMMA + _harmonic_tail(x)
    return out


def _harmonic_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H_b - H_a = sum_{i=a+1}^{b} 1/i for integer arrays b >= a >= 0, without cancellation."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    out = _harmonic(b) - _harmonic(a)
    big = a > _H_TABLE_MAX
    ab, bb = a[big].astype(np.float64), b[big].astype(np.float64)
    out[big] = np.log1p((bb - ab) / ab) + (_harmonic_tail(bb) - _harmonic_tail(ab))
    return out


def _mean_selective_risk(cum_n: np.ndarray, cum_err: np.ndarray) -> float:
    r"""(1/n) sum_{i=1}^{n} E[risk after i pixels], pixels taken block by block.

    Block k holds :math:`n_k` tied pixels with :math:`e_k` errors, taken after
    :math:`C_{k-1}` pixels with :math:`E_{k-1}` errors. In a random order of the block the
    expected errors after i pixels are :math:`E_{k-1} + (i - C_{k-1}) r_k`,
    :math:`r_k = e_k / n_k`, so the block contributes
    :math:`\sum_{i=C_{k-1}+1}^{C_k} [E_{k-1} + (i - C_{k-1}) r_k] / i
    = (E_{k-1} - C_{k-1} r_k)(H_{C_k} - H_{C_{k-1}}) + e_k`.
    """
    c0 = np.concatenate([[0], cum_n[:-1]])
    e0 = np.concatenate([[0], cum_err[:-1]])
    n_k, e_k = cum_n - c0, cum_err - e0
    r_k = e_k / n_k
    total = np.sum((e0 - c0 * r_k) * _harmonic_diff(c0, cum_n)) + cum_err[-1]
    return float(total) / float(cum_n[-1])


def _oracle_aurc(n: int, m: int) -> float:
    r"""AURC of the ideal ordering (n - m right pixels first, then the m errors).

    .. math:: \mathrm{AURC}^* = \frac{1}{n}\sum_{i=n-m+1}^{n}\frac{i-(n-m)}{i}
              = \frac{1}{n}\left[m - (n - m)(H_n - H_{n-m})\right]
    """
    hd = float(_harmonic_diff(np.array([n - m]), np.array([n]))[0])
    return (m - (n - m) * hd) / n


def _errors(p: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    return (p > threshold) != y


@dataclass(frozen=True, repr=False)
class RiskCoverage:
    """Risk-coverage curve of an uncertainty map (from `risk_coverage`).

    Point k keeps the pixels with ``u <= u_threshold[k]``, the most certain ones.

    Attributes
    ----------
    coverage : ndarray
        Fraction of pixels kept, increasing to 1.
    risk : ndarray
        Error rate (at the decision threshold) among the kept pixels.
    u_threshold : ndarray
        Distinct uncertainty values, increasing.
    aurc, aurc_oracle, e_aurc : float
        See `aurc` and `e_aurc`.
    error_rate : float
        Error rate over all pixels (the risk at full coverage).
    n, n_errors : int
        Pixels evaluated and wrong predictions among them.
    """

    coverage: np.ndarray
    risk: np.ndarray
    u_threshold: np.ndarray
    aurc: float
    aurc_oracle: float
    e_aurc: float
    error_rate: float
    n: int
    n_errors: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __repr__(self) -> str:
        return (f"RiskCoverage({self.coverage.size} points, N={self.n}, errors={self.n_errors} "
                f"({100 * self.error_rate:.4g} %), AURC={self.aurc:.4g}, "
                f"oracle AURC={self.aurc_oracle:.4g}, E-AURC={self.e_aurc:.4g})")


def risk_coverage(p, y, u, threshold: float = 0.5, *, ignore=None) -> RiskCoverage:
    r"""Risk-coverage curve and AURC of an uncertainty map.

    The risk-coverage curve is that of selective classification (Geifman & El-Yaniv,
    NeurIPS 2017); AURC and E-AURC are from Geifman, Uziel & El-Yaniv (ICLR 2019,
    arXiv:1805.08206).

    Pixels are ranked by uncertainty u, most certain first. A pixel is wrong when its
    prediction ``p > threshold`` differs from y. Keeping the fraction c of most certain
    pixels, the *selective risk* is their error rate. Point k of the curve keeps every pixel
    with :math:`u \le u_k` (tied pixels are kept or dropped together):

    .. math:: \mathrm{coverage}_k = \frac{\#\{u \le u_k\}}{n}, \qquad
              \mathrm{risk}_k = \frac{\#\{u \le u_k,\ \mathrm{wrong}\}}{\#\{u \le u_k\}}

    The :math:`u_k` returned are each distinct u of a wrong pixel, the distinct u just below
    it, and 1025 evenly spaced coverages: between consecutive points only right pixels enter,
    so the risk there falls as (errors so far) / (pixels so far). AURC, E-AURC and the oracle
    are those of `aurc` / `e_aurc`, computed exactly. Each class of pixels (right, wrong) has
    its u sorted once; there is no loop over pixels.

    Parameters
    ----------
    p, y : array_like
        Probabilities in [0, 1] and truth mask of the same shape.
    u : array_like
        Uncertainty, same shape, finite; larger = less certain (entropy, epistemic, ...).
    threshold : float
        Decision threshold on p.
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    RiskCoverage
    """
    threshold = _check_threshold(threshold)
    p, y, u = _prepare(p, y, u, ignore)
    err = _errors(p, y, threshold)
    u_err, u_ok = _sorted_by_class(u, err)  # each ascending
    n, m = u.size, u_err.size
    # Curve points (rule u <= t). Between two consecutive distinct u of wrong pixels only right
    # pixels enter, so those stretches need no inner point for an exact AURC (their terms
    # telescope, see _mean_selective_risk); kept: t = v and t = "just below v" for each
    # distinct wrong-pixel u value v, plus 1025 evenly spaced coverages for drawing.
    events = _unique_of_sorted(u_err)
    grid = u_ok[np.round(np.linspace(0, u_ok.size - 1, 1025)).astype(np.int64)] if u_ok.size else u_ok
    t = np.unique(np.concatenate([events, _largest_below([u_err, u_ok], events), grid,
                                  np.array([u_ok[-1] if u_ok.size else u_err[-1]], u.dtype)]))
    cum_err = np.searchsorted(u_err, t, "right").astype(np.int64)
    cum_n = cum_err + np.searchsorted(u_ok, t, "right")
    keep = cum_n > 0  # drops t = -inf, "below" of the smallest u
    t, cum_err, cum_n = t[keep], cum_err[keep], cum_n[keep]
    value = _mean_selective_risk(cum_n, cum_err)
    oracle = _oracle_aurc(n, m)
    return RiskCoverage(coverage=cum_n / n, risk=cum_err / cum_n,
                        u_threshold=t.astype(np.float64), aurc=value, aurc_oracle=oracle,
                        e_aurc=value - oracle, error_rate=m / n, n=n, n_errors=m)


def aurc(p, y, u, threshold: float = 0.5, *, ignore=None) -> float:
    r"""Area under the risk-coverage curve (Geifman, Uziel & El-Yaniv, ICLR 2019).

    With the n pixels ordered by increasing uncertainty u and :math:`\mathrm{err}_{(j)}` the
    0/1 error (``(p > threshold) != y``) of the j-th:

    .. math:: \mathrm{AURC} = \frac{1}{n}\sum_{i=1}^{n} \hat r(i),\qquad
              \hat r(i) = \frac{1}{i}\sum_{j=1}^{i} \mathrm{err}_{(j)}

    the mean selective risk over the coverages i/n. Pixels with tied u cannot be ordered;
    the value returned is the expectation of this sum over every order of tied pixels
    (exact, in closed form with harmonic numbers), so it does not depend on how ties fall.
    Lower is better; a constant u gives the error rate.

    Parameters
    ----------
    p, y, u : array_like
        Probabilities, truth mask and uncertainty of the same shape.
    threshold : float
        Decision threshold on p.
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    float
    """
    return risk_coverage(p, y, u, threshold, ignore=ignore).aurc


def e_aurc(p, y, u, threshold: float = 0.5, *, ignore=None) -> float:
    r"""Excess AURC over the oracle ordering (Geifman, Uziel & El-Yaniv, ICLR 2019).

    .. math:: \mathrm{E\text{-}AURC} = \mathrm{AURC} - \mathrm{AURC}^*, \qquad
              \mathrm{AURC}^* = \frac{1}{n}\sum_{i=n-m+1}^{n} \frac{i - (n - m)}{i}
              = \frac{1}{n}\left[m - (n - m)(H_n - H_{n-m})\right]

    where m of the n pixels are wrong and :math:`H_k` is the k-th harmonic number:
    :math:`\mathrm{AURC}^*` is the AURC of the ordering that puts every right pixel before
    every wrong one (the same n and m). The paper's continuous approximation is
    :math:`\hat r + (1 - \hat r)\ln(1 - \hat r)`, :math:`\hat r = m/n`; this is its exact
    finite-n value. E-AURC is 0 for a perfect ranking and removes the dependence of AURC on
    the error rate, so it compares uncertainty maps of models with different accuracy.

    Parameters
    ----------
    p, y, u : array_like
        Probabilities, truth mask and uncertainty of the same shape.
    threshold : float
        Decision threshold on p.
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    float
    """
    return risk_coverage(p, y, u, threshold, ignore=ignore).e_aurc


@dataclass(frozen=True, repr=False)
class ErrorVsUncertainty:
    """Error rate per uncertainty bin (from `error_vs_uncertainty`).

    Unpacks as ``mean_u, error_rate, count``.

    Attributes
    ----------
    mean_u : ndarray, (n_bins,)
        Mean uncertainty in each bin; NaN for empty bins.
    error_rate : ndarray, (n_bins,)
        Fraction of wrong predictions in each bin; NaN for empty bins.
    count : ndarray of int, (n_bins,)
    edges : ndarray, (n_bins + 1,)
        Bin k holds ``edges[k] <= u < edges[k+1]`` (the last bin includes its right edge).
    strategy : str
    """

    mean_u: np.ndarray
    error_rate: np.ndarray
    count: np.ndarray
    edges: np.ndarray
    strategy: str

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.mean_u, self.error_rate, self.count))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __repr__(self) -> str:
        rows = [f"ErrorVsUncertainty({self.count.size} {self.strategy} bins, N={int(self.count.sum())})",
                f"  {'mean u':>10}  {'error %':>9}  {'pixels':>11}"]
        for k in range(self.count.size):
            rows.append(f"  {self.mean_u[k]:10.4g}  {100 * self.error_rate[k]:9.4g}  {self.count[k]:11d}")
        return "\n".join(rows)


def error_vs_uncertainty(p, y, u, n_bins: int = 10, strategy: str = "quantile",
                         threshold: float = 0.5, *, ignore=None) -> ErrorVsUncertainty:
    r"""Error rate of the prediction ``p > threshold`` in bins of uncertainty u.

    For bin :math:`B_k`: error rate :math:`\frac{1}{|B_k|}\sum_{i\in B_k}
    \mathbb 1[(p_i > t) \ne y_i]` and mean uncertainty :math:`\bar u_k`. A useful
    uncertainty gives an error rate that rises with u.

    Parameters
    ----------
    p, y, u : array_like
        Probabilities, truth mask and uncertainty of the same shape.
    n_bins : int
    strategy : {'quantile', 'uniform'}
        'quantile' (default): edges at quantiles of u, so bins hold similar pixel counts (with
        heavy ties some are empty); 'uniform': equal-width bins from min(u) to max(u).
    threshold : float
        Decision threshold on p.
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    ErrorVsUncertainty
    """
    n_bins = _check_n_bins(n_bins)
    strategy = _check_strategy(strategy)
    threshold = _check_threshold(threshold)
    p, y, u = _prepare(p, y, u, ignore)
    err = _errors(p, y, threshold)
    edges = _bin_edges(u, n_bins, strategy, float(u.min()), float(u.max()))
    count, sum_u, n_err = _binned_stats(u, err, edges, strategy == "uniform")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_u = np.where(count > 0, sum_u / count, np.nan)
        rate = np.where(count > 0, n_err / count, np.nan)
    return ErrorVsUncertainty(mean_u, rate, count, edges, strategy)


def error_detection_auroc(p, y, u, threshold: float = 0.5, *, ignore=None) -> float:
    r"""How well u separates wrong predictions from right ones: AUROC of u for "wrong".

    The event is :math:`w_i = \mathbb 1[(p_i > t) \ne y_i]`; u is its score:

    .. math:: \frac{1}{n_w n_r}\sum_{i: w_i=1}\sum_{j: w_j=0}
              \left[\mathbb 1(u_i > u_j) + \tfrac12\mathbb 1(u_i = u_j)\right]

    (ties by midranks, i.e. half credit). 0.5 = u carries no information about errors,
    1 = every wrong pixel is more uncertain than every right one.

    Parameters
    ----------
    p, y, u : array_like
        Probabilities, truth mask and uncertainty of the same shape.
    threshold : float
        Decision threshold on p.
    ignore : array_like, optional
        True for pixels to exclude.

    Returns
    -------
    float
    """
    threshold = _check_threshold(threshold)
    p, y, u = _prepare(p, y, u, ignore)
    err = _errors(p, y, threshold)
    m = int(err.sum())
    _require_both(m, err.size - m, "error_detection_auroc", pos="wrong", neg="right")
    return _auc_midrank(u, err)
