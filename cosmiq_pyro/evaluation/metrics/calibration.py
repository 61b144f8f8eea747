"""Calibration of CR probabilities: Brier score, NLL, ECE and the reliability curve."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ._reductions import _binned_means, _chunked_sum
from ._validation import _check_n_bins, _check_strategy, _prepare

__all__ = ["brier", "nll", "ReliabilityCurve", "reliability_curve", "ece"]


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
    mean_p, frac_pos, count, edges = _binned_means(p, y, n_bins, strategy, 0.0, 1.0)
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
