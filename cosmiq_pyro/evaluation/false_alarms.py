"""False alarms of a frame-level flag (the novelty threshold): the measured rate with its exact
binomial interval (`false_alarms`), and what a threshold set on ``n`` calibration frames promises
on a test of ``m`` frames (`threshold_design`).

A threshold ``t`` fitted as the ``1 - q`` quantile of ``n`` calibration scores is itself random:
its false-alarm rate on new in-distribution frames, ``1 - F(t)`` (``F``: the scores' CDF), has
mean

.. math:: E[1 - F(t)] = 1 - \\frac{(n - 1)(1 - q) + 1}{n + 1} = \\frac{q (n - 1) + 1}{n + 1}

for continuous scores and `numpy.quantile`'s linear interpolation (``F(X_{(j)})`` is the ``j``-th
of ``n`` uniform order statistics, mean ``j / (n + 1)``), and a spread of about
``sqrt(q (1 - q) / n)``.  A test on ``m`` further frames counts ``k ~ Binomial(m, 1 - F(t))``
flags; its Clopper-Pearson interval is what a requirement such as "upper end of the 95 %
interval at most 7 %" is checked against.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["FalseAlarms", "clopper_pearson", "false_alarms", "threshold_design"]


class FalseAlarms(NamedTuple):
    """``k`` of ``n`` in-distribution frames flagged, the rate and its exact interval."""

    k: int
    n: int
    rate: float
    low: float
    high: float


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion ``k / n``.

    .. math:: \\mathrm{low} = B^{-1}(\\alpha/2;\\, k, n - k + 1), \\qquad
              \\mathrm{high} = B^{-1}(1 - \\alpha/2;\\, k + 1, n - k)

    (``B^{-1}``: the Beta quantile; ``low = 0`` for ``k = 0``, ``high = 1`` for ``k = n``), as
    ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="exact")`` computes it.

    Raises
    ------
    ValueError
        ``n < 1``, ``k`` outside ``[0, n]`` or ``confidence`` outside (0, 1).
    """
    from scipy.stats import binomtest

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k must be an int in [0, n={n}], got {k!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def false_alarms(scores, threshold: float, confidence: float = 0.95) -> FalseAlarms:
    """How many in-distribution ``scores`` lie above ``threshold`` (the flag ``score > threshold``),
    with the exact interval of the rate (`clopper_pearson`).

    Raises
    ------
    ValueError
        No scores, or a non-finite score or threshold.
    """
    scores = np.asarray(scores, dtype=float).ravel()
    if scores.size == 0 or not np.isfinite(scores).all() or not np.isfinite(threshold):
        raise ValueError(f"scores must be finite and non-empty and the threshold finite, got {scores.size} "
                         f"score(s) and threshold {threshold!r}")
    k, n = int((scores > threshold).sum()), int(scores.size)
    return FalseAlarms(k, n, k / n, *clopper_pearson(k, n, confidence))


def threshold_design(n_calibration: int, false_alarm: float, *, n_test: int = 500, limit: float = 0.07,
                     confidence: float = 0.95, draws: int = 20_000, seed: int = 0) -> dict:
    """What a threshold at the ``1 - false_alarm`` quantile of ``n_calibration`` frames promises.

    Monte Carlo over calibration sets (exact for continuous, independent scores: the scores'
    CDF maps them to uniforms): each draw sets the threshold on ``n_calibration`` uniforms as
    `numpy.quantile` does, ``t = U_(j) + f (U_(j+1) - U_(j))`` with ``h = (n - 1)(1 - q)``,
    ``j = floor(h) + 1``, ``f = h - floor(h)``; the ``j``-th order statistic is drawn as
    ``U_(j) ~ Beta(j, n - j + 1)`` and the next as ``U_(j) + (1 - U_(j)) Beta(1, n - j)`` (the
    smallest of the ``n - j`` uniforms above it).  Its true rate is ``1 - t``, and a test of
    ``n_test`` frames counts ``k ~ Binomial(n_test, 1 - t)`` flags.

    Returns
    -------
    dict
        ``mean_rate`` and ``q95_rate`` (the true rate's mean and 95th percentile over
        calibration sets), ``expected_high`` (median upper end of the test's interval) and
        ``p_fail`` (the chance that the test's upper end exceeds ``limit``).
    """
    if isinstance(n_calibration, bool) or not isinstance(n_calibration, (int, np.integer)) or n_calibration < 2:
        raise ValueError(f"n_calibration must be an int >= 2, got {n_calibration!r}")
    if not 0.0 < false_alarm < 1.0:
        raise ValueError(f"false_alarm must be in (0, 1), got {false_alarm!r}")
    rng = np.random.default_rng(seed)
    n = int(n_calibration)
    h = (n - 1) * (1.0 - false_alarm)
    j, frac = int(np.floor(h)) + 1, h - np.floor(h)  # 1-based rank of the lower order statistic
    lower = rng.beta(j, n - j + 1, draws)
    upper = lower + (1.0 - lower) * rng.beta(1, n - j, draws) if j < n else lower
    rate = 1.0 - (lower + frac * (upper - lower))  # (draws,)
    k = rng.binomial(int(n_test), rate)
    high = _upper_ends(k, int(n_test), confidence)
    return {"mean_rate": float(rate.mean()), "q95_rate": float(np.quantile(rate, 0.95)),
            "expected_high": float(np.median(high)), "p_fail": float((high > limit).mean())}


def _upper_ends(k: np.ndarray, n: int, confidence: float) -> np.ndarray:
    """`clopper_pearson`'s upper ends for many ``k`` at once: the Beta quantile of its definition."""
    from scipy.stats import beta

    k = np.asarray(k)
    high = beta.ppf(1.0 - (1.0 - confidence) / 2.0, k + 1, np.maximum(n - k, 1))
    return np.where(k >= n, 1.0, high)
