"""The linearised moment pass: the posterior-mean twin carries the means, a second stream the
variances, each nonlinearity replaced by its derivative at the mean.

Means: the deterministic twin with every weight at its posterior mean (`fused.fused_logits` of
the means: ``relu(m)``, max-pool by value), one fused oneDNN pass.  Variances, for a convolution
with independent weights ``W ~ N(mu, sigma^2)``, bias ``N(mu_b, sigma_b^2)``, on inputs of mean
``m`` and variance ``v`` (as in `moment_net`):

.. math::
    \\mathrm{Var}[y] = \\mathrm{conv}([v, m^2], [\\mu^2 + \\sigma^2, \\sigma^2]) + \\sigma_b^2 ;

through a ReLU ``Var -> Var \\cdot 1[m_y > 0]`` (its derivative at the mean ``m_y``, the
first-order or "delta-method" rule); through the 2x2 max-pool the variance of the member whose
mean is the largest.  No ``erf``/``exp`` work: the variance stream is one stacked convolution per
layer and a mask, so the pass costs about three twin passes (the mean pass, and the variance
convolutions over twice the input channels).

The mean stream is the twin of the posterior means exactly, so its bottleneck is the novelty
encoder's feature map (`inference.novelty.mean_weights`) and comes for free.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .fused import ONEDNN_FUSION, FusedWeights, _conv, _upsample, fuse_weights
from .guides import guide_locs, guide_scales
from .moment_net import WEIGHT_SITES, moment_weights_from
from .unet import UNet2Sigmoid

__all__ = ["LinearWeights", "linear_weights", "linear_weights_from", "linear_logits"]


def _onednn_bfloat16() -> bool:
    """Whether oneDNN's bfloat16 kernels run on this CPU (they need avx512bw/vl/dq or
    avx_ne_convert; elsewhere the bfloat16 variance stream takes PyTorch's own convolution)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


#: dtypes the fused oneDNN convolution-and-multiply takes on this machine
_ONEDNN_DTYPES = (torch.float32, torch.bfloat16) if _onednn_bfloat16() else (torch.float32,)


@dataclass
class LinearWeights:
    """Weights of a linearised moment pass.

    Attributes
    ----------
    mean : FusedWeights
        The posterior means, batch norm folded (`fused.fuse_weights`, one draw).
    var : dict
        ``layer -> (variance weight, variance bias)``: ``[mu^2 + sigma^2, sigma^2]`` stacked along
        the input channels (``sigma^2`` alone for the first layer, whose input is exact) and
        ``sigma_b^2``, batch norm folded (`moment_net.moment_weights`).
    """

    mean: FusedWeights
    var: dict

    def to(self, device) -> "LinearWeights":
        """The same weights on ``device`` (memory formats and dtypes kept)."""
        def move(t):
            return None if t is None else t.to(device)
        mean = FusedWeights(self.mean.k, self.mean.hidden, self.mean.n_classes,
                            {k: (move(w), move(b)) for k, (w, b) in self.mean.convs.items()}, self.mean.group_norms)
        return LinearWeights(mean, {k: (move(w), move(b)) for k, (w, b) in self.var.items()})

    @property
    def var_dtype(self) -> torch.dtype:
        """The dtype the variance stream runs in (that of its weights)."""
        return self.var["inc2"][0].dtype


def linear_weights(net: UNet2Sigmoid, guide, *, channels_last: bool = True,
                   var_dtype: torch.dtype = torch.float32) -> LinearWeights:
    """The `LinearWeights` of ``net`` (batch norm, not group norm) under the mean-field ``guide``;
    the variance stream in ``var_dtype`` (float32, or bfloat16 where the CPU has native bfloat16
    dot products: about half the time of its convolutions, variances within 1 %)."""
    if not isinstance(net, UNet2Sigmoid):
        raise TypeError(f"net must be a UNet2Sigmoid (the Bayesian twin), got {type(net).__name__}")
    return linear_weights_from(net, guide_locs(guide, WEIGHT_SITES), guide_scales(guide, WEIGHT_SITES),
                               channels_last=channels_last, var_dtype=var_dtype)


def linear_weights_from(net: UNet2Sigmoid, locs: dict, scales: dict, *, channels_last: bool = True,
                        var_dtype: torch.dtype = torch.float32) -> LinearWeights:
    """`linear_weights` from the posterior means ``locs`` and standard deviations ``scales``
    (``{site: tensor}``, `moment_net.WEIGHT_SITES`); the mean stream in the dtype of ``locs``."""
    moments = moment_weights_from(net, locs, scales)  # checks the net type and the norm
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    var = {name: (vw.to(var_dtype).contiguous(memory_format=fmt), vb.to(var_dtype))
           for name, (_, _, vw, vb) in moments.layers.items()}
    mean = fuse_weights(net, {site: mu.detach()[None] for site, mu in locs.items()}, channels_last=channels_last)
    return LinearWeights(mean=mean, var=var)


def _masked_var_conv(v, m, var_weight, var_bias, mask, padding: int):
    """``conv([v, m^2], var_weight) + var_bias``, times ``mask`` (0/1) when given."""
    inp = torch.cat([v, m * m], dim=1)
    if mask is not None and ONEDNN_FUSION and inp.device.type == "cpu" and inp.dtype in _ONEDNN_DTYPES:
        return torch.ops.mkldnn._convolution_pointwise.binary(
            inp, mask, var_weight, var_bias, [padding, padding], [1, 1], [1, 1], 1, "mul", None, None, [], "")
    out = F.conv2d(inp, var_weight, var_bias, padding=padding)
    return out if mask is None else out.mul_(mask)


def linear_logits(lw: LinearWeights, x: torch.Tensor, *, return_bottleneck: bool = False):
    """Logit mean and variance of every pixel by the linearised moment pass.

    Parameters
    ----------
    lw : LinearWeights
        From `linear_weights` (on ``x``'s device).
    x : Tensor, shape (B, 1, H, W)
        The image in electrons, ``H`` and ``W`` even.  Call under ``torch.inference_mode()``.
    return_bottleneck : bool
        Also return the mean stream's bottleneck (the novelty features, `fused.fused_bottleneck`
        of the posterior means).

    Returns
    -------
    m, v : Tensor, shape (B, n_classes, H, W)
    low : Tensor, shape (B, 2h, H/2, W/2)
        With ``return_bottleneck``.
    """
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"x must be (B, 1, H, W) with H and W even, got shape {tuple(x.shape)}")
    c, V, vt = lw.mean.convs, lw.var, lw.var_dtype
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)

    def mask(y):  # 1[m > 0] of the mean stream's ReLU output, in the variance stream's dtype
        return torch.sign(y.to(vt))

    def layer(name, inp_m, inp_v):
        """Mean ``relu(conv(m))`` (fused) and its linearised variance."""
        y = _conv(inp_m, *c[name], padding=1, groups=1, relu=True)
        return y, _masked_var_conv(inp_v, inp_m.to(vt), *V[name], mask(y), 1)

    y = _conv(x, *c["inc1"], padding=1, groups=1, relu=True)  # (B, h, H, W)
    v = F.conv2d((x * x).to(vt), *V["inc1"], padding=1).mul_(mask(y))  # exact input
    skip, skip_v = layer("inc2", y, v)
    low, idx = F.max_pool2d(skip, 2, return_indices=True)  # (B, h, H/2, W/2)
    v = skip_v.flatten(-2).gather(-1, idx.flatten(-2)).view_as(low)
    y, v = layer("down1", low, v)  # (B, 2h, H/2, W/2)
    low, v = layer("down2", y, v)
    w, b = c["upsample"]
    up = _upsample(low, w, b, groups=1)  # (B, h, H, W)
    low_v = low.to(vt)
    up_v = F.conv_transpose2d(torch.cat([v, low_v * low_v], dim=1), *V["upsample"], stride=2)
    cat_m, cat_v = torch.cat([skip, up], dim=1).to(vt), torch.cat([skip_v, up_v], dim=1)  # (B, 2h, H, W)
    y = _conv(skip, *c["up1_skip"], padding=1, groups=1, relu=False)
    y = _conv(up, c["up1_up"][0], None, padding=1, groups=1, relu=True, add=y)  # relu(W_s*skip + W_u*up + b)
    v = _masked_var_conv(cat_v, cat_m, *V["up1"], mask(y), 1)
    y, v = layer("up2", y, v)
    m = _conv(y, *c["head"], padding=0, groups=1, relu=False)  # (B, n_classes, H, W)
    v = _masked_var_conv(v, y.to(vt), *V["head"], None, 0).float()
    return (m, v, low) if return_bottleneck else (m, v)
