"""Detection quality of a per-pixel CR score: exact ROC curve (optionally with the predicted
mask dilated), best TPR under FPR targets, and ROC AUC. Rates in percent, as in deepCR."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._dilation import _dilated_score
from ._ranking import _auc_midrank, _largest_below, _n_above, _sorted_by_class, _unique_of_sorted
from ._validation import (
    _check_binary, _check_dilate, _check_prob, _check_shapes, _prepare, _require_both, _valid,
)

__all__ = ["RocCurve", "roc_curve", "TprAtFpr", "tpr_at_fpr", "roc_auc"]


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


def _corners(*curves) -> np.ndarray:
    """Points to keep so each (x, y) polyline is unchanged: ends plus non-collinear points."""
    n = curves[0][0].size
    keep = np.zeros(n, bool)
    keep[[0, -1]] = True
    for x, y in curves:
        dx, dy = np.diff(x), np.diff(y)
        keep[1:-1] |= dx[:-1] * dy[1:] != dy[:-1] * dx[1:]  # int64 cross product, exact
    return keep


def _scores_by_class(p, y, ignore, dilate, what: str) -> tuple:
    """Validate the inputs of a ROC-type metric and sort the scores of each class.

    Returns
    -------
    dilate : int
        The validated disk radius.
    pos, neg : ndarray
        Scores p of the CR and of the non-CR pixels not ignored, each ascending.
    dilated_by_class : callable
        ``dilated_by_class() -> (qpos, qneg)``: the same for the dilated score (see
        `_dilated_score`); called only when ``dilate > 0``, after the caller has dropped
        what it no longer needs, to bound peak memory.
    """
    p_full = _check_prob(p, "p")
    y_full = _check_binary(y, "y")
    ig = None if ignore is None else _check_binary(ignore, "ignore")
    _check_shapes(p=p_full, y=y_full, ignore=ig)
    dilate = _check_dilate(dilate, p_full.shape)
    p, y = _valid(ig, p_full, y_full)
    pos, neg = _sorted_by_class(p, y)
    _require_both(pos.size, neg.size, what)

    def dilated_by_class():
        (q,) = _valid(ig, _dilated_score(p_full, ig, dilate))
        return _sorted_by_class(q, y)

    return dilate, pos, neg, dilated_by_class


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
    dilate, pos, neg, dilated_by_class = _scores_by_class(p, y, ignore, dilate, "roc_curve")
    qpos, qneg = dilated_by_class() if dilate else (None, None)
    scored = [a for a in (pos, neg, qpos, qneg) if a is not None]

    if thresholds is None:
        if drop_intermediate:
            thr = _vertex_thresholds(scored, [a for a in (pos, qpos) if a is not None])
        else:
            distinct = np.unique(np.concatenate([_unique_of_sorted(a) for a in scored]))
            thr = np.concatenate([distinct[::-1], np.array([-np.inf], pos.dtype)])
        thr_out = thr.astype(np.float64)
    else:
        thr_out = np.atleast_1d(np.asarray(thresholds, np.float64))
        if thr_out.ndim != 1 or np.isnan(thr_out).any():
            raise ValueError("thresholds must be a 1-D array of numbers without NaN")
        thr = _as_score_dtype(thr_out, pos.dtype)

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
    dilate, pos, neg, dilated_by_class = _scores_by_class(p, y, ignore, dilate, "tpr_at_fpr")
    n_pos, n_neg = pos.size, neg.size
    thr = _best_threshold(neg, targets)
    tpr = 100.0 * _n_above(pos, thr) / n_pos
    fpr_pct = 100.0 * _n_above(neg, thr) / n_neg
    extra = {}
    if dilate:
        del pos, neg
        qpos, qneg = dilated_by_class()
        thr_d = _best_threshold(qneg, targets)
        extra = dict(
            tpr_dilated_pct=100.0 * _n_above(qpos, thr) / n_pos,
            threshold_dilated=thr_d.astype(np.float64),
            tpr_dilated_true_pct=100.0 * _n_above(qpos, thr_d) / n_pos,
            fpr_dilated_pct=100.0 * _n_above(qneg, thr_d) / n_neg)
    return TprAtFpr(fpr_target=targets, threshold=thr.astype(np.float64), tpr_pct=tpr,
                    fpr_pct=fpr_pct, dilate=dilate, **extra)


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
