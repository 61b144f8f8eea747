"""Harmonic numbers H_n in float64, exact for small n and by their asymptotic series beyond,
and differences H_b - H_a without cancellation (for the closed-form AURC)."""
from __future__ import annotations

import numpy as np

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
