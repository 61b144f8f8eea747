"""Ranking statistics from the scores of each class sorted once: counts above thresholds,
distinct values, nearest lower neighbours and the midrank AUC (Mann-Whitney U)."""
from __future__ import annotations

import numpy as np


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
