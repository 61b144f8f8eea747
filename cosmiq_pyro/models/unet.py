"""The deterministic deepCR-style mask network (plain PyTorch, no Pyro).

`UNet2Sigmoid` is the 2-level U-Net of deepCR's mask model (Zhang & Bloom 2020, ApJ 889, 24)::

    inc   : conv3x3(c_in -> h) - norm - ReLU - conv3x3(h -> h) - norm - ReLU      full resolution
    down  : maxpool 2 - conv3x3(h -> 2h) - norm - ReLU - conv3x3(2h -> 2h) - norm - ReLU
    up    : convT 2x2 stride 2 (2h -> h), concat [skip, up] (2h) -
            conv3x3(2h -> h) - norm - ReLU - conv3x3(h -> h) - norm - ReLU
    head  : conv1x1(h -> n_classes), sigmoid

With h = 32 it has 101,473 parameters (batch norm), like deepCR's ``ACS-WFC`` model, whose
published weights `UNet2Sigmoid.from_deepcr` loads.  The Bayesian twin in `bayesian.py` subclasses
this class, so the two architectures cannot drift apart.
"""
from __future__ import annotations

import importlib.util
import math
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from ..utils.checks import check_int

__all__ = ["NORMS", "GROUPS", "BN_MOMENTUM", "UNet2Sigmoid", "deepcr_weights_file"]

NORMS = ("batch", "group", "none")
GROUPS = 8  # GroupNorm groups, as in the prototype this package re-implements
BN_MOMENTUM = 0.1  # deepCR used 0.005; the value only matters while training


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
    if kind == "group":
        return nn.GroupNorm(math.gcd(GROUPS, channels), channels)
    return nn.Identity()


def _double_conv(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(c_in, c_out, 3, padding=1),
            norm1=_norm(norm, c_out),
            act1=nn.ReLU(),
            conv2=nn.Conv2d(c_out, c_out, 3, padding=1),
            norm2=_norm(norm, c_out),
            act2=nn.ReLU(),
        )
    )


class _Down(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.block = _double_conv(c_in, c_out, norm)

    def forward(self, x):
        return self.block(self.pool(x))


class _Up(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.block = _double_conv(c_in, c_out, norm)

    def forward(self, x_low, skip):
        # skip first, then the upsampled map: deepCR's channel order
        return self.block(torch.cat([skip, self.upsample(x_low)], dim=1))


class UNet2Sigmoid(nn.Module):
    """deepCR's 2-level U-Net mask model: image (electrons) -> per-pixel CR probability.

    Parameters
    ----------
    n_channels : int
        Input channels (1 for a single exposure).
    n_classes : int
        Output channels (1: the CR probability).
    hidden : int
        Channels of the first level ``h``; the second level has ``2h``.
    norm : {"batch", "group", "none"}
        Normalisation after each 3x3 convolution: batch norm (deepCR's ACS-WFC model),
        group norm with 8 groups (gcd(8, channels); batch-size independent), or none.

    Notes
    -----
    Inputs are ``(B, n_channels, H, W)`` with ``H`` and ``W`` even (the max-pool halves them);
    `cosmiq_pyro.predict` pads any image to a multiple of 4.  `forward` returns probabilities,
    `logits` the pre-sigmoid map (use it for a numerically stable BCE).
    """

    def __init__(self, n_channels: int = 1, n_classes: int = 1, hidden: int = 32, norm: str = "batch"):
        super().__init__()
        for name, value in (("n_channels", n_channels), ("n_classes", n_classes), ("hidden", hidden)):
            check_int(value, name, minimum=1)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.n_channels, self.n_classes, self.hidden, self.norm = n_channels, n_classes, hidden, norm
        self.inc = _double_conv(n_channels, hidden, norm)
        self.down = _Down(hidden, 2 * hidden, norm)
        self.up = _Up(2 * hidden, hidden, norm)
        self.head = nn.Conv2d(hidden, n_classes, 1)

    @property
    def config(self) -> dict:
        """Keyword arguments that rebuild this architecture (plus its class name)."""
        return {
            "kind": type(self).__name__,
            "n_channels": self.n_channels,
            "n_classes": self.n_classes,
            "hidden": self.hidden,
            "norm": self.norm,
        }

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid CR scores. ``x``: (B, C, H, W) -> (B, n_classes, H, W)."""
        skip = self.inc(x)  # (B, h, H, W)
        low = self.down(skip)  # (B, 2h, H/2, W/2)
        return self.head(self.up(low, skip))  # (B, n_classes, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """CR probabilities, ``sigmoid(logits(x))``."""
        return torch.sigmoid(self.logits(x))

    @classmethod
    def from_deepcr(cls, name: str = "ACS-WFC") -> "UNet2Sigmoid":
        """Load one of deepCR's published mask models from the installed ``deepCR`` package.

        Only the weight file is read (``learned_models/mask/<name>.pth`` of the ``deepCR``
        distribution, with ``torch.load(weights_only=True)``); no deepCR code is imported.

        Parameters
        ----------
        name : str
            A mask model shipped with deepCR whose network is the batch-norm ``UNet2Sigmoid``
            with input in electrons, e.g. ``"ACS-WFC"`` (also ``"decam"``).

        Returns
        -------
        UNet2Sigmoid
            In eval mode, ``norm="batch"``, ``hidden`` read from the weights.
        """
        weight_file = deepcr_weights_file(name)
        state = torch.load(weight_file, map_location="cpu", weights_only=True)
        if not any(key.endswith("running_mean") for key in state):
            raise ValueError(
                f"deepCR model {name!r} has no batch norm; it expects normalised input "
                "(deepCR's WFC3-UVIS mode), which this class does not reproduce"
            )
        try:
            ours = _translate_deepcr_state(state)
        except KeyError as err:
            raise ValueError(
                f"deepCR model {name!r} ({weight_file}) is not the batch-norm 2-level UNet2Sigmoid "
                f"this class twins (unexpected key {err.args[0]!r})"
            ) from None
        hidden = ours["inc.conv1.weight"].shape[0]
        net = cls(n_channels=ours["inc.conv1.weight"].shape[1], n_classes=ours["head.weight"].shape[0],
                  hidden=hidden, norm="batch")
        net.load_state_dict(ours)
        return net.eval()


# deepCR module paths -> ours (deepCR's `WrappedModel` adds the "module." prefix)
_DEEPCR_PREFIXES = (
    ("module.inc.conv.conv.", "inc."),
    ("module.down1.mpconv.1.conv.", "down.block."),
    ("module.up8.conv.conv.", "up.block."),
    ("module.up8.up.", "up.upsample."),
    ("module.outc.conv.", "head."),
)
_DEEPCR_LAYERS = {"0": "conv1", "1": "norm1", "3": "conv2", "4": "norm2"}


def _translate_deepcr_state(state: dict) -> "OrderedDict[str, torch.Tensor]":
    """Rename a deepCR ``UNet2SigmoidBatchNorm`` state dict to `UNet2Sigmoid`'s keys."""
    ours = OrderedDict()
    for key, tensor in state.items():
        for theirs, mine in _DEEPCR_PREFIXES:
            if key.startswith(theirs):
                rest = key[len(theirs):]
                if mine.endswith(("inc.", "block.")):
                    index, _, leaf = rest.partition(".")
                    rest = f"{_DEEPCR_LAYERS[index]}.{leaf}"
                ours[mine + rest] = tensor
                break
        else:
            raise KeyError(key)
    return ours


_DEEPCR_KINDS = {"mask": "mask", "inpaint": "inpainting"}  # learned_models/<folder> -> what the files are


def deepcr_weights_file(name: str, kind: str = "mask") -> Path:
    """Path of deepCR's published weights ``name`` (e.g. ``"ACS-WFC"``) without importing deepCR:
    ``learned_models/<kind>/<name>.pth``, ``kind`` "mask" (CR masks) or "inpaint" (inpainting nets).

    Raises
    ------
    ModuleNotFoundError
        The ``deepCR`` package (which carries the weight files) is not installed.
    ValueError
        ``name`` is not one of the installed models of that kind (the message lists them).
    """
    what = _DEEPCR_KINDS[kind]
    spec = importlib.util.find_spec("learned_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"deepCR's published {what} weights need the 'deepCR' package: pip install deepCR==0.3.1 "
            "(or cosmiq_pyro[deepcr])"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / kind
    available = sorted(p.stem for p in folder.glob("*.pth"))
    if not isinstance(name, str) or name not in available:
        raise ValueError(f"unknown deepCR {what} model {name!r}; installed: {', '.join(available)}")
    return folder / f"{name}.pth"
