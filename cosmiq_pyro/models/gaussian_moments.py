"""First two moments of the nonlinearities of `UNet2Sigmoid` applied to Gaussian inputs.

Each activation is summarised by its mean ``m`` and variance ``v`` (elementwise tensors of the
same shape), as if it were Gaussian and independent of the others; these functions return the
mean and variance of the layer's output.  Notation: ``phi`` and ``Phi`` are the standard normal
density and distribution function, ``Phi^c(a) = Phi(-a)`` (computed with ``erfc``, accurate in
the tail).

ReLU of ``X ~ N(m, v)``, ``s = sqrt(v)``, ``a = m / s``:

.. math::
    E[\\max(X, 0)] = s\\,(a\\Phi(a) + \\phi(a)), \\qquad
    \\mathrm{Var} = v\\,\\big(\\Phi(a) + B(a)\\big), \\qquad
    B(a) = a^2 \\Phi(a) \\Phi^c(a) + a\\phi(a)(\\Phi^c(a) - \\Phi(a)) - \\phi(a)^2 ,

the variance written without the cancellation of ``E[Y^2] - E[Y]^2``.  Maximum of two independent
Gaussians ``X_1, X_2`` (Clark 1961, "The greatest of a finite set of random variables",
Operations Research 9, 145), ``theta = sqrt(v_1 + v_2)``, ``a = (m_1 - m_2) / theta``:

.. math::
    E[\\max] = m_2 + \\theta\\,(a\\Phi(a) + \\phi(a)), \\qquad
    \\mathrm{Var} = v_1 \\Phi(a) + v_2 \\Phi^c(a) + \\theta^2 B(a)

(ReLU is the case ``X_2 = 0``).  The 2x2 max-pool applies it pairwise,
``max(max(x_00, x_01), max(x_10, x_11))``, treating the intermediate maxima as Gaussian
(`maxpool2_moments`), or keeps the moments of the input with the largest mean
(`maxpool2_argmax_moments`, cheaper).

The sigmoid of a Gaussian logit ``z ~ N(m, v)``: ``E[sigma(z)]`` and the expected binary entropy
``E[H(sigma(z))]``, ``H(sigma(z)) = softplus(z) - z sigma(z)``, by Gauss-Hermite quadrature,
``E f(z) ~= sum_k w_k f(m + sqrt(2 v) x_k) / sqrt(pi)`` (`sigmoid_moments`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["relu_moments", "max2_moments", "maxpool2_moments", "maxpool2_argmax_moments",
           "sigmoid_moments", "gauss_hermite"]

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TINY_VAR = 1e-30  # variance floor: a = m / sqrt(v) stays finite (|a| huge means a step function)


def _gauss_terms(a: torch.Tensor):
    """``Phi(a)``, ``Phi(-a)``, ``phi(a)`` and ``B(a)`` (module docstring)."""
    cdf = 0.5 * torch.erfc(-a * _SQRT1_2)
    cdf_c = 0.5 * torch.erfc(a * _SQRT1_2)
    pdf = _INV_SQRT_2PI * torch.exp(-0.5 * a * a)
    b = a * a * cdf * cdf_c + a * pdf * (cdf_c - cdf) - pdf * pdf
    return cdf, cdf_c, pdf, b


def relu_moments(m: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``max(X, 0)``, ``X ~ N(m, v)`` elementwise (any shape).

    ``v = 0`` gives ``(relu(m), 0)``.
    """
    v = v.clamp_min(_TINY_VAR)
    s = torch.sqrt(v)
    a = m / s
    cdf, _, pdf, b = _gauss_terms(a)
    mean = s * (a * cdf + pdf)
    var = (v * (cdf + b)).clamp_min(0.0)
    return mean, var


def max2_moments(m1, v1, m2, v2) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``max(X_1, X_2)`` for independent Gaussians (Clark 1961)."""
    theta2 = (v1 + v2).clamp_min(_TINY_VAR)
    theta = torch.sqrt(theta2)
    a = (m1 - m2) / theta
    cdf, cdf_c, pdf, b = _gauss_terms(a)
    mean = m2 + theta * (a * cdf + pdf)
    var = (v1 * cdf + v2 * cdf_c + theta2 * b).clamp_min(0.0)
    return mean, var


def _quads(t: torch.Tensor):
    """The four members of each 2x2 block of ``t`` (B, C, H, W) -> four (B, C, H/2, W/2)."""
    return t[..., 0::2, 0::2], t[..., 0::2, 1::2], t[..., 1::2, 0::2], t[..., 1::2, 1::2]


def maxpool2_moments(m: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of the 2x2 stride-2 max-pool of independent Gaussians, by Clark's pairwise rule.

    ``m``, ``v``: (B, C, H, W), ``H`` and ``W`` even -> (B, C, H/2, W/2) each.
    """
    m00, m01, m10, m11 = _quads(m)
    v00, v01, v10, v11 = _quads(v)
    ma, va = max2_moments(m00, v00, m01, v01)
    mb, vb = max2_moments(m10, v10, m11, v11)
    return max2_moments(ma, va, mb, vb)


def maxpool2_argmax_moments(m: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of the 2x2 max-pool taken as those of the block member with the largest mean.

    Cheaper than `maxpool2_moments`; it ignores the chance that another member is the largest.
    ``m``, ``v``: (B, C, H, W) -> (B, C, H/2, W/2) each.
    """
    mean, idx = F.max_pool2d(m, 2, return_indices=True)
    var = v.flatten(-2).gather(-1, idx.flatten(-2)).view_as(mean)
    return mean, var


@lru_cache(maxsize=8)
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Physicists' Gauss-Hermite nodes ``x_k`` and weights ``w_k / sqrt(pi)`` (they sum to 1)."""
    x, w = np.polynomial.hermite.hermgauss(n)
    return x, w / math.sqrt(math.pi)


def sigmoid_moments(m: torch.Tensor, v: torch.Tensor, nodes: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[sigma(z)]`` and ``E[H(sigma(z))]`` (nats) for ``z ~ N(m, v)`` elementwise.

    Gauss-Hermite quadrature with ``nodes`` points, computed in the dtype of ``m`` (use float64
    for the reference).  ``H(sigma(z)) = softplus(z) - z sigma(z)`` (no ``log p`` formed).
    """
    x, w = gauss_hermite(int(nodes))
    scale = torch.sqrt(2.0 * v.clamp_min(0.0))
    p = torch.zeros_like(m)
    h = torch.zeros_like(m)
    for xk, wk in zip(x.tolist(), w.tolist()):
        z = m + scale * xk
        s = torch.sigmoid(z)
        p = p + wk * s
        h = h + wk * (F.softplus(z, threshold=50.0) - z * s)
    return p, h
