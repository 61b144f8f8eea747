"""First two moments of the nonlinearities of `UNet2Sigmoid` applied to Gaussian inputs.

Each activation is summarised by its mean ``m`` and variance ``v`` (elementwise tensors of the
same shape), as if it were Gaussian and independent of the others; these functions return the
mean and variance of the layer's output.  Notation: ``phi`` and ``Phi`` are the standard normal
density and distribution function, ``Phi^c(a) = 1 - Phi(a)``.

ReLU of ``X ~ N(m, v)``, ``s = sqrt(v)``, ``a = m / s``:

.. math::
    E[\\max(X, 0)] = s\\,(a\\Phi(a) + \\phi(a)), \\qquad
    \\mathrm{Var} = v\\,\\big(\\Phi(a) + B(a)\\big), \\qquad
    B(a) = a^2 \\Phi(a) \\Phi^c(a) + a\\phi(a)(\\Phi^c(a) - \\Phi(a)) - \\phi(a)^2
         = g(a)\\,(a\\Phi^c(a) - \\phi(a)), \\quad g(a) = a\\Phi(a) + \\phi(a),

the variance written without the cancellation of ``E[Y^2] - E[Y]^2`` (``Phi^c = 1 - Phi``: where
it underflows in float32, ``a > 5.5``, B is below 1e-6 and the variance is ``v``).  Maximum of two independent
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

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_MAX_A2 = 150.0
_TINY_VAR = 1e-30  # variance floor: a = m / sqrt(v) stays finite (|a| huge means a step function)


def _gauss_terms(a: torch.Tensor):
    """``Phi(a)``, ``g(a) = a Phi(a) + phi(a)`` and ``B(a)`` (module docstring), the last as
    ``B = g (a Phi^c - phi)`` (the same polynomial, fewer operations)."""
    cdf = torch.special.ndtr(a)
    # a^2 capped at 150 (phi = 2.7e-33 there, a normal float32): the exponential of far smaller
    # numbers passes through denormals, which run ~10x slower on x86 and change nothing here
    pdf = (a * a).clamp_(max=_MAX_A2).mul_(-0.5).sub_(_LOG_SQRT_2PI).exp_()
    g = torch.addcmul(pdf, a, cdf)
    b = torch.addcmul(-pdf, a, 1.0 - cdf).mul_(g)
    return cdf, g, b


def relu_moments(m: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``max(X, 0)``, ``X ~ N(m, v)`` elementwise (any shape).

    ``v = 0`` gives ``(relu(m), 0)`` (to within the variance floor of 1e-30).
    """
    v = v.clamp_min(_TINY_VAR)
    inv_s = torch.rsqrt(v)
    a = m * inv_s
    cdf, g, b = _gauss_terms(a)
    mean = g.mul_(v * inv_s)  # s g, s = sqrt(v)
    var = (cdf + b).mul_(v).clamp_min_(0.0)
    return mean, var


def max2_moments(m1, v1, m2, v2) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``max(X_1, X_2)`` for independent Gaussians (Clark 1961)."""
    theta2 = (v1 + v2).clamp_min(_TINY_VAR)
    inv_theta = torch.rsqrt(theta2)
    a = (m1 - m2) * inv_theta
    cdf, g, b = _gauss_terms(a)
    mean = torch.addcmul(m2, g, theta2 * inv_theta)
    var = (v1 * cdf).add_(v2 * (1.0 - cdf)).add_(b.mul_(theta2)).clamp_min_(0.0)
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
    for the reference).  ``H(sigma(z)) = softplus(z) - z sigma(z)`` (no ``log p`` formed).  The
    sums are clamped to their ranges, ``[0, 1]`` and ``>= 0``: where every node saturates
    (``sigma(z) = 1`` in the dtype, a logit above ~37 in float64) the weighted sum of ones can
    round to one ulp above 1, and ``1 - p < 0`` would make the binary entropy NaN downstream.
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
    return p.clamp(0.0, 1.0), h.clamp_min(0.0)
