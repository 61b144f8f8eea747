"""Moment propagation through the Bayesian `UNet2Sigmoid`: the mean and variance of every
activation under the mean-field Gaussian posterior, in one deterministic pass.

Convolution with independent Gaussian weights ``W ~ N(mu, sigma^2)``, bias ``N(mu_b, sigma_b^2)``,
on an input of independent activations with means ``m`` and variances ``v``:

.. math::
    E[y] = \\mathrm{conv}(m, \\mu) + \\mu_b, \\qquad
    \\mathrm{Var}[y] = \\mathrm{conv}(v, \\mu^2) + \\mathrm{conv}(m^2 + v, \\sigma^2) + \\sigma_b^2
                     = \\mathrm{conv}([v, m^2], [\\mu^2 + \\sigma^2, \\sigma^2]) + \\sigma_b^2 ,

the two variance convolutions done as one over stacked channels.  The same holds for the 2x2
stride-2 transposed convolution (up-sampling) and the 1x1 head.  An eval-mode batch norm after a
convolution is the affine map ``s_c (z - mu_c) + beta_c`` (`fused.fold_batch_norm`), so it folds
into the weights: ``mu -> s mu``, ``sigma -> |s| sigma``, ``mu_b -> s (mu_b - mu_c) + beta_c``,
``sigma_b -> |s| sigma_b``.  The concatenation ``[skip, up]`` concatenates means and variances.
ReLU and max-pool use `gaussian_moments`.  The output is the logit's ``N(m, v)`` per pixel.

Independence between the activations of one layer is assumed (they share weights, so it is an
approximation; `inference.moments` measures it against Monte Carlo and calibrates ``v``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .gaussian_moments import maxpool2_argmax_moments, maxpool2_moments, relu_moments
from .guides import guide_locs, guide_scales
from .unet import UNet2Sigmoid

__all__ = ["MomentWeights", "moment_weights", "moment_weights_from", "WEIGHT_SITES", "moment_logits", "conv_moments", "POOL_RULES"]

#: Max-pool rules: Clark's pairwise maximum, or the moments of the member with the largest mean.
POOL_RULES = {"clark": maxpool2_moments, "argmax": maxpool2_argmax_moments}

# layer name -> (conv module path, batch norm module path or None)
_LAYERS = {"inc1": ("inc.conv1", "inc.norm1"), "inc2": ("inc.conv2", "inc.norm2"),
           "down1": ("down.block.conv1", "down.block.norm1"), "down2": ("down.block.conv2", "down.block.norm2"),
           "upsample": ("up.upsample", None), "up1": ("up.block.conv1", "up.block.norm1"),
           "up2": ("up.block.conv2", "up.block.norm2"), "head": ("head", None)}


@dataclass
class MomentWeights:
    """Per layer ``(weight, bias, variance weight, variance bias)`` of a moment pass.

    ``weight``/``bias`` are the folded posterior means; ``variance weight`` is
    ``[mu^2 + sigma^2, sigma^2]`` stacked along the input channels (the first layer, whose input
    is exact: ``sigma^2`` alone) and ``variance bias`` is ``sigma_b^2``.  Transposed-convolution
    weights keep their (C_in, C_out, kh, kw) layout (stacking is along C_in, dimension 0).
    """

    layers: dict
    hidden: int

    def to(self, device=None, dtype=None, memory_format=None) -> "MomentWeights":
        def move(t):
            t = t.to(device=device, dtype=dtype)
            return t.contiguous(memory_format=memory_format) if memory_format is not None and t.dim() == 4 else t
        return MomentWeights({k: tuple(move(t) for t in v) for k, v in self.layers.items()}, self.hidden)


WEIGHT_SITES = tuple(f"{path}.{leaf}" for path, _ in _LAYERS.values() for leaf in ("weight", "bias"))


def moment_weights(net: UNet2Sigmoid, guide) -> MomentWeights:
    """The posterior means and variances of ``net``'s weights (mean-field ``guide``), batch
    norm folded (in float64, stored as float32).

    Raises
    ------
    ValueError
        A net with group norm (its statistics depend on the input: not foldable).
    """
    if not isinstance(net, UNet2Sigmoid):
        raise TypeError(f"net must be a UNet2Sigmoid (the Bayesian twin), got {type(net).__name__}")
    return moment_weights_from(net, guide_locs(guide, WEIGHT_SITES), guide_scales(guide, WEIGHT_SITES))


def moment_weights_from(net: UNet2Sigmoid, locs: dict, scales: dict) -> MomentWeights:
    """`moment_weights` from the posterior means ``locs`` and standard deviations ``scales``
    (``{site: tensor}`` for every site of `WEIGHT_SITES`; ``net`` supplies the batch norms)."""
    if not isinstance(net, UNet2Sigmoid):
        raise TypeError(f"net must be a UNet2Sigmoid (the Bayesian twin), got {type(net).__name__}")
    if net.norm == "group":
        raise ValueError("the moment pass needs batch norm or no norm (group norm cannot be folded)")
    modules = dict(net.named_modules())
    layers = {}
    for name, (path, norm) in _LAYERS.items():
        mu, sd = locs[f"{path}.weight"].double(), scales[f"{path}.weight"].double()
        mu_b, sd_b = locs[f"{path}.bias"].double(), scales[f"{path}.bias"].double()
        bn = modules.get(norm) if norm else None
        if isinstance(bn, nn.BatchNorm2d):
            s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)  # (C_out,)
            mu, sd = mu * s[:, None, None, None], sd * s.abs()[:, None, None, None]
            mu_b = s * (mu_b - bn.running_mean.double()) + bn.bias.detach().double()
            sd_b = sd_b * s.abs()
        in_dim = 0 if name == "upsample" else 1  # ConvTranspose2d weights are (C_in, C_out, kh, kw)
        var_w = sd ** 2 if name == "inc1" else torch.cat([mu ** 2 + sd ** 2, sd ** 2], dim=in_dim)
        layers[name] = tuple(t.float().contiguous() for t in (mu, mu_b, var_w, sd_b ** 2))
    return MomentWeights(layers, net.hidden)


def conv_moments(m: torch.Tensor, v: torch.Tensor, weight, bias, var_weight, var_bias, padding: int = 1):
    """Mean and variance of ``conv2d(X, W) + b`` (stride 1) for independent Gaussian inputs and weights.

    Parameters
    ----------
    m, v : Tensor, shape (B, C_in, H, W)
        Input means and variances.
    weight, bias : Tensor, shapes (C_out, C_in, kh, kw), (C_out,)
        Weight and bias means ``mu``, ``mu_b``.
    var_weight, var_bias : Tensor, shapes (C_out, 2 C_in, kh, kw), (C_out,)
        ``[mu^2 + sigma^2, sigma^2]`` stacked along the input channels, and ``sigma_b^2``.

    Returns
    -------
    mean, var : Tensor, shape (B, C_out, H', W')
        ``conv(m, mu) + mu_b`` and ``conv([v, m^2], [mu^2 + sigma^2, sigma^2]) + sigma_b^2``.
    """
    mean = F.conv2d(m, weight, bias, padding=padding)
    var = F.conv2d(torch.cat([v, m * m], dim=1), var_weight, var_bias, padding=padding)
    return mean, var


def _mconv(layers, name, m, v, padding):
    return conv_moments(m, v, *layers[name], padding=padding)


def moment_logits(mw: MomentWeights, x: torch.Tensor, pool: str = "clark") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the logit of every pixel under the posterior, one deterministic pass.

    Parameters
    ----------
    mw : MomentWeights
        From `moment_weights` (on ``x``'s device and dtype).
    x : Tensor, shape (B, 1, H, W)
        The image in electrons, ``H`` and ``W`` even.
    pool : {"clark", "argmax"}
        Max-pool rule (`POOL_RULES`).

    Returns
    -------
    m, v : Tensor, shape (B, n_classes, H, W)
    """
    L = mw.layers
    w, b, vw, vb = L["inc1"]
    m = F.conv2d(x, w, b, padding=1)  # (B, h, H, W); the input is exact
    v = F.conv2d(x * x, vw, vb, padding=1)
    m, v = relu_moments(m, v)
    skip_m, skip_v = relu_moments(*_mconv(L, "inc2", m, v, 1))
    m, v = POOL_RULES[pool](skip_m, skip_v)  # (B, h, H/2, W/2)
    m, v = relu_moments(*_mconv(L, "down1", m, v, 1))  # (B, 2h, H/2, W/2)
    m, v = relu_moments(*_mconv(L, "down2", m, v, 1))
    w, b, vw, vb = L["upsample"]
    up_m = F.conv_transpose2d(m, w, b, stride=2)  # (B, h, H, W)
    up_v = F.conv_transpose2d(torch.cat([v, m * m], dim=1), vw, vb, stride=2)
    m, v = torch.cat([skip_m, up_m], dim=1), torch.cat([skip_v, up_v], dim=1)  # (B, 2h, H, W)
    m, v = relu_moments(*_mconv(L, "up1", m, v, 1))  # (B, h, H, W)
    m, v = relu_moments(*_mconv(L, "up2", m, v, 1))
    return _mconv(L, "head", m, v, 0)  # (B, n_classes, H, W) each
