"""Fast inference for `UNet2Sigmoid`: batch norm folded into the convolutions, a plain functional
forward, and several weight draws evaluated in one pass.

Batch-norm folding
------------------
In eval mode a batch norm after a convolution is an affine map per output channel ``c``,

.. math:: \\mathrm{BN}(z)_c = \\gamma_c \\frac{z_c - \\mu_c}{\\sqrt{\\sigma^2_c + \\epsilon}} + \\beta_c ,

so ``BN(conv(x; W, b)) = conv(x; W', b')`` with

.. math:: s_c = \\frac{\\gamma_c}{\\sqrt{\\sigma^2_c + \\epsilon}}, \\qquad
          W'_{c\\,\\cdot} = s_c W_{c\\,\\cdot}, \\qquad b'_c = s_c (b_c - \\mu_c) + \\beta_c

(`fold_batch_norm`; exact up to float rounding; the folding is done in float64).

Several draws per pass
----------------------
``k`` weight draws ``W^{(1..k)}`` of the same architecture run as one network whose layers are
grouped convolutions (``groups=k``): the draws' weights are stacked along the output channels,
so the activations hold ``k`` blocks of channels, one per draw, that never mix.  The first
convolution reads the shared input with all ``k * h`` filters (``groups=1``).  The
concatenation ``[skip, up]`` before the up-block is never built: a convolution of a
concatenation is the sum of the convolutions of its parts,

.. math:: W * [s, u] = W_s * s + W_u * u ,

which keeps the draws' channel blocks apart and saves a copy.

On the CPU the convolutions call oneDNN's fused kernels (convolution + bias + ReLU, and
convolution + add + ReLU in one pass, written in place; the ops PyTorch's Inductor compiler uses)
on channels-last tensors; elsewhere, or if those ops are missing, plain ``F.conv2d`` with an
in-place ReLU computes the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .unet import UNet2Sigmoid

__all__ = ["fold_batch_norm", "FusedWeights", "fuse_weights", "fused_logits", "fused_bottleneck"]

# (block prefix, conv, norm) of the six 3x3 convolutions, in forward order
_CONV3 = (("inc", "conv1", "norm1"), ("inc", "conv2", "norm2"),
          ("down.block", "conv1", "norm1"), ("down.block", "conv2", "norm2"),
          ("up.block", "conv1", "norm1"), ("up.block", "conv2", "norm2"))


def _onednn_fusion_available() -> bool:
    try:
        return (torch.backends.mkldnn.is_available()
                and callable(torch.ops.mkldnn._convolution_pointwise)
                and callable(torch.ops.mkldnn._convolution_pointwise_.binary)
                and callable(torch.ops.mkldnn._convolution_transpose_pointwise))
    except (AttributeError, RuntimeError):
        return False


ONEDNN_FUSION = _onednn_fusion_available()


def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                    running_var: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                    eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode batch norm into the convolution before it.

    Parameters
    ----------
    weight : Tensor, shape (..., C_out, C_in, kh, kw)
        Convolution weights; leading dimensions (e.g. weight draws) are kept.
    bias : Tensor, shape (..., C_out)
    running_mean, running_var, gamma, beta : Tensor, shape (C_out,)
        The batch norm's running statistics and affine parameters.
    eps : float
        The batch norm's ``eps``.

    Returns
    -------
    weight, bias : Tensor
        ``s * weight`` and ``s * (bias - running_mean) + beta`` with
        ``s = gamma / sqrt(running_var + eps)``, in the dtype of ``weight``.
    """
    scale = gamma.double() / torch.sqrt(running_var.double() + eps)  # (C_out,)
    folded_w = weight.double() * scale[:, None, None, None]
    folded_b = (bias.double() - running_mean.double()) * scale + beta.double()
    return folded_w.to(weight.dtype), folded_b.to(bias.dtype)


@dataclass
class FusedWeights:
    """Weights of ``k`` draws of a `UNet2Sigmoid`, folded and stacked for `fused_logits`.

    Attributes
    ----------
    k : int
        Number of draws evaluated together.
    hidden, n_classes : int
        Architecture (as in `UNet2Sigmoid`).
    convs : dict
        ``name -> (weight, bias)`` of the grouped layers (``"inc1"``, ``"inc2"``, ``"down1"``,
        ``"down2"``, ``"upsample"``, ``"up1_skip"``, ``"up1_up"``, ``"up2"``, ``"head"``);
        weights stacked over draws along the output channels.
    group_norms : dict or None
        ``name -> (GroupNorm groups, gamma, beta, eps)`` per 3x3 convolution when the net uses
        group norm (it cannot be folded: its statistics come from the input), else None.
    """

    k: int
    hidden: int
    n_classes: int
    convs: dict
    group_norms: dict | None


def fuse_weights(net: UNet2Sigmoid, draws: Mapping[str, torch.Tensor] | None = None, *,
                 channels_last: bool = True) -> FusedWeights:
    """Fold ``net``'s batch norms into ``k`` weight draws and stack them for one grouped pass.

    Parameters
    ----------
    net : UNet2Sigmoid
        Supplies the architecture and the normalisation layers (running statistics, affine
        parameters); its conv weights are used when ``draws`` is None.  A Pyro twin
        (`bayesian.UNet2SigmoidVI`) works too, with ``draws`` given.
    draws : mapping, optional
        ``{state-dict key: (k, *shape)}`` for every conv weight and bias (the Pyro twin's
        weight sites, e.g. from `bayesian.draw_weights`).  Default: the net's own weights, ``k = 1``.
    channels_last : bool
        Store 4-D weights channels-last (what oneDNN's kernels read directly on the CPU).

    Returns
    -------
    FusedWeights
    """
    if not isinstance(net, UNet2Sigmoid):
        raise TypeError(f"net must be a UNet2Sigmoid, got {type(net).__name__}")
    modules = dict(net.named_modules())
    if draws is None:
        draws = {}
        for path, layer in modules.items():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                draws[f"{path}.weight"] = layer.weight.detach()[None]
                draws[f"{path}.bias"] = layer.bias.detach()[None]
    sizes = {tuple(v.shape[:1]) for v in draws.values()}
    if len(sizes) != 1:
        raise ValueError(f"draws must share their leading (draw) dimension, got sizes {sorted(sizes)}")
    k = next(iter(sizes))[0]
    h, n_classes = net.hidden, net.n_classes

    def get(key):
        if key not in draws:
            raise ValueError(f"draws lacks {key!r}")
        return draws[key].detach()

    convs, group_norms = {}, ({} if net.norm == "group" else None)
    names = ("inc1", "inc2", "down1", "down2", "up1", "up2")
    for name, (block, conv, norm) in zip(names, _CONV3):
        w, b = get(f"{block}.{conv}.weight"), get(f"{block}.{conv}.bias")  # (k, o, i, 3, 3), (k, o)
        layer = modules[f"{block}.{norm}"]
        if isinstance(layer, nn.BatchNorm2d):
            w, b = fold_batch_norm(w, b, layer.running_mean, layer.running_var, layer.weight,
                                   layer.bias, layer.eps)
        elif isinstance(layer, nn.GroupNorm):
            group_norms[name] = (k * layer.num_groups, layer.weight.detach().repeat(k),
                                 layer.bias.detach().repeat(k), layer.eps)
        if name == "up1":  # W * [skip, up] = W_skip * skip + W_up * up
            convs["up1_skip"] = (w[:, :, :h], b)
            convs["up1_up"] = (w[:, :, h:], None)
        else:
            convs[name] = (w, b)
    convs["upsample"] = (get("up.upsample.weight"), get("up.upsample.bias"))  # (k, 2h, h, 2, 2)
    convs["head"] = (get("head.weight"), get("head.bias"))  # (k, n_classes, h, 1, 1)

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    stacked = {}
    for name, (w, b) in convs.items():
        w = w.reshape(k * w.shape[1], *w.shape[2:]).contiguous(memory_format=memory_format)
        stacked[name] = (w, None if b is None else b.reshape(-1).contiguous())
    return FusedWeights(k=k, hidden=h, n_classes=n_classes, convs=stacked, group_norms=group_norms)


def _conv(x, weight, bias, *, padding: int, groups: int, relu: bool, add=None):
    """``relu?(conv2d(x, weight, bias) + add?)`` (stride 1), fused into one oneDNN call on the CPU.

    ``add`` (an intermediate of ours) is overwritten with the result and returned.
    """
    if ONEDNN_FUSION and x.device.type == "cpu" and x.dtype == torch.float32:
        pad = [padding, padding]
        if add is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, pad, [1, 1], [1, 1], groups, "relu" if relu else "none", [], "")
        return torch.ops.mkldnn._convolution_pointwise_.binary(
            add, x, weight, bias, pad, [1, 1], [1, 1], groups, "add", 1.0, "relu" if relu else None, [], "")
    y = F.conv2d(x, weight, bias, padding=padding, groups=groups)
    if add is not None:
        y = add.add_(y)
    return y.relu_() if relu else y


def _upsample(x, weight, bias, groups: int):
    """2x2 stride-2 transposed convolution (the U-Net's up-sampling)."""
    if ONEDNN_FUSION and x.device.type == "cpu" and x.dtype == torch.float32:
        return torch.ops.mkldnn._convolution_transpose_pointwise(
            x, weight, bias, [0, 0], [0, 0], [2, 2], [1, 1], groups, "none", [], "")
    return F.conv_transpose2d(x, weight, bias, stride=2, groups=groups)


def fused_logits(fw: FusedWeights, x: torch.Tensor, *, return_bottleneck: bool = False):
    """Logits of the ``fw.k`` draws on ``x`` in one pass.

    Parameters
    ----------
    fw : FusedWeights
        From `fuse_weights`.
    x : Tensor, shape (B, C, H, W)
        ``H`` and ``W`` even.  Call under ``torch.inference_mode()`` (or ``no_grad``).
    return_bottleneck : bool
        Also return the bottleneck map (the ``down`` block's output) of the same pass.

    Returns
    -------
    Tensor, shape (B, k, n_classes, H, W)
        ``[:, t]`` equals ``net.logits(x)`` of a `UNet2Sigmoid` in eval mode holding draw ``t``.
    Tensor, shape (B, k * 2h, H/2, W/2)
        With ``return_bottleneck``: channels ``[t*2h, (t+1)*2h)`` equal ``net.down(net.inc(x))``
        for draw ``t`` (channels-last on the CPU).
    """
    return _fused_pass(fw, x, encoder_only=False, return_bottleneck=return_bottleneck)


def fused_bottleneck(fw: FusedWeights, x: torch.Tensor) -> torch.Tensor:
    """The bottleneck map ``net.down(net.inc(x))`` of the ``fw.k`` draws, (B, k * 2h, H/2, W/2):
    the encoder half of `fused_logits` (about 44 % of its FLOPs)."""
    return _fused_pass(fw, x, encoder_only=True, return_bottleneck=True)


def _fused_pass(fw: FusedWeights, x: torch.Tensor, *, encoder_only: bool, return_bottleneck: bool):
    k, c = fw.k, fw.convs
    gn = fw.group_norms

    def block(name, inp, groups, add=None, add_weight=None):
        w, b = c[name]
        if gn is None:
            if add is None:
                return _conv(inp, w, b, padding=1, groups=groups, relu=True)
            partial = _conv(inp, w, b, padding=1, groups=groups, relu=False)
            return _conv(add, add_weight, None, padding=1, groups=groups, relu=True, add=partial)
        y = _conv(inp, w, b, padding=1, groups=groups, relu=False)
        if add is not None:
            y = _conv(add, add_weight, None, padding=1, groups=groups, relu=False, add=y)
        num_groups, gamma, beta, eps = gn[name.split("_")[0]]
        return F.group_norm(y, num_groups, gamma, beta, eps).relu_()

    if x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"x must be (B, C, H, W) with H and W even, got shape {tuple(x.shape)}")
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    skip = block("inc2", block("inc1", x, 1), k)  # (B, k*h, H, W)
    low = F.max_pool2d(skip, 2)  # (B, k*h, H/2, W/2)
    low = block("down2", block("down1", low, k), k)  # (B, k*2h, H/2, W/2)
    if encoder_only:
        return low
    up = _upsample(low, *c["upsample"], groups=k)  # (B, k*h, H, W)
    y = block("up1_skip", skip, k, add=up, add_weight=c["up1_up"][0])  # relu(W_s*skip + W_u*up + b)
    y = block("up2", y, k)
    logits = _conv(y, *c["head"], padding=0, groups=k, relu=False)  # (B, k*n_classes, H, W)
    logits = logits.reshape(x.shape[0], k, fw.n_classes, *x.shape[-2:])
    return (logits, low) if return_bottleneck else logits
