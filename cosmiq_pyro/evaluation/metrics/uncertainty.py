"""Quality of an uncertainty map: does it rank wrong predictions above right ones?
Risk-coverage curve, AURC and E-AURC (selective classification), error rate per
uncertainty bin, the AUROC of uncertainty for detecting errors; and the binary entropy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ._harmonic import _harmonic_diff
from ._ranking import _auc_midrank, _largest_below, _sorted_by_class, _unique_of_sorted
from ._reductions import _binned_means
from ._validation import (
    _check_n_bins, _check_strategy, _check_threshold, _prepare, _require_both,
)

__all__ = ["binary_entropy", "RiskCoverage", "risk_coverage", "aurc", "e_aurc",
           "ErrorVsUncertainty", "error_vs_uncertainty", "error_detection_auroc"]


def binary_entropy(p) -> np.ndarray:
    """Entropy of a Bernoulli(p) in nats, elementwise, float64, with ``0 log 0 = 0``:

    .. math:: H[p] = -p \\ln p - (1 - p) \\ln(1 - p).

    (The torch twin for tensors is `cosmiq_pyro.utils.torchtools.binary_entropy`.)
    """
    p = np.asarray(p, dtype=np.float64)
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(q > 0, q * np.log(q), 0.0))
    return h


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


def _uncertainty_and_errors(p, y, u, threshold, ignore) -> tuple:
    """Validate; return the flat valid u and the 0/1 errors ``(p > threshold) != y``."""
    threshold = _check_threshold(threshold)
    p, y, u = _prepare(p, y, u, ignore)
    return u, (p > threshold) != y


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
    u, err = _uncertainty_and_errors(p, y, u, threshold, ignore)
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
    u, err = _uncertainty_and_errors(p, y, u, threshold, ignore)
    mean_u, rate, count, edges = _binned_means(u, err, n_bins, strategy, float(u.min()),
                                               float(u.max()))
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
    u, err = _uncertainty_and_errors(p, y, u, threshold, ignore)
    m = int(err.sum())
    _require_both(m, err.size - m, "error_detection_auroc", pos="wrong", neg="right")
    return _auc_midrank(u, err)
