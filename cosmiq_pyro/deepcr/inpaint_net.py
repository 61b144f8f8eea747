"""deepCR's inpainting networks as a plain torch U-Net, loaded from the installed ``deepCR`` package.

deepCR (Zhang & Bloom 2020, section 2.2) fills the pixels of a CR mask ``m`` with a second
U-Net that sees the masked image and the mask::

    x_in   = concat[ image * (1 - m), m ]          (B, 2, H, W)
    fill   = UNet(x_in)                            (B, 1, H, W)   no output activation
    result = fill * m + image * (1 - m)            only masked pixels change

`InpaintUNet` is that network: ``depth`` levels (2 for deepCR's ``UNet2BatchNorm``, 3 for
``UNet3BatchNorm``) of (conv3x3 - batch norm - ReLU) x 2, max-pool down, transposed-conv up with
the skip concatenated first, a 1x1 head.  `InpaintUNet.from_deepcr` reads the published weights
(``learned_models/inpaint/<name>.pth``, a plain state dict) with ``torch.load(weights_only=True)``
and renames deepCR's keys; no deepCR code is imported.  `inpaint_with_net` runs it on an image of
any size in overlapping tiles (a margin wider than the receptive field, so tiles do not change the
result), optionally on several threads.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from ..models.unet import deepcr_weights_file
from ..utils.checks import check_int
from ..utils.tiling import resolve_n_jobs, run_each, tile_boxes, tile_margin
from ..utils.torchtools import eval_mode, module_device

__all__ = ["InpaintUNet", "inpaint_with_net"]

#: Depths of deepCR's inpainting nets (``UNet2BatchNorm``, ``UNet3BatchNorm``).  Their tile
#: margin comes from their layers (`utils.tiling.tile_margin`: 9 px rounded up to 12 for depth 2,
#: 23 px to 24 for depth 3).
DEPTHS = (2, 3)
BN_MOMENTUM = 0.005  # deepCR's value; it only matters while training


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    # deepCR's layer order (indices 0, 1, 3, 4 hold the weights)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM),
                         nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
                         nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM), nn.ReLU())


class InpaintUNet(nn.Module):
    """deepCR's batch-norm inpainting U-Net (``UNet2BatchNorm`` / ``UNet3BatchNorm``).

    Parameters
    ----------
    n_channels : int
        Input channels: 2 (masked image, mask) for deepCR's inpainting models.
    n_classes : int
        Output channels (1: the filled image).
    hidden : int
        Channels of the first level ``h``; level ``k`` has ``h * 2**k``.
    depth : {2, 3}
        Resolution levels.

    Notes
    -----
    ``forward`` takes ``(B, n_channels, H, W)`` with ``H`` and ``W`` multiples of ``2**(depth-1)``
    and returns ``(B, n_classes, H, W)`` without an output activation (the fill is in the image's
    units).  `inpaint_with_net` pads and tiles any image.
    """

    def __init__(self, n_channels: int = 2, n_classes: int = 1, hidden: int = 32, depth: int = 2):
        super().__init__()
        for name, value in (("n_channels", n_channels), ("n_classes", n_classes), ("hidden", hidden)):
            check_int(value, name, minimum=1)
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {list(DEPTHS)}, got {depth!r}")
        self.n_channels, self.n_classes, self.hidden, self.depth = n_channels, n_classes, hidden, depth
        widths = [hidden * 2 ** k for k in range(depth)]  # e.g. [32, 64] or [32, 64, 128]
        self.inc = _double_conv(n_channels, widths[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), _double_conv(widths[k - 1], widths[k]))
                                   for k in range(1, depth))
        self.ups = nn.ModuleList(nn.ModuleDict({"up": nn.ConvTranspose2d(widths[k], widths[k - 1], 2, stride=2),
                                                "conv": _double_conv(widths[k], widths[k - 1])})
                                 for k in range(depth - 1, 0, -1))
        self.head = nn.Conv2d(hidden, n_classes, 1)

    @property
    def config(self) -> dict:
        """Keyword arguments that rebuild this architecture (plus its class name)."""
        return {"kind": type(self).__name__, "n_channels": self.n_channels, "n_classes": self.n_classes,
                "hidden": self.hidden, "depth": self.depth}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]  # (B, h, H, W)
        for down in self.downs:
            skips.append(down(skips[-1]))  # (B, h 2^k, H / 2^k, W / 2^k)
        y = skips.pop()
        for up in self.ups:
            y = up["conv"](torch.cat([skips.pop(), up["up"](y)], dim=1))  # skip first: deepCR's order
        return self.head(y)  # (B, n_classes, H, W)

    @classmethod
    def from_deepcr(cls, name: str = "ACS-WFC-F606W-2-32") -> "InpaintUNet":
        """One of deepCR's published inpainting models, from the installed ``deepCR`` package.

        Parameters
        ----------
        name : str
            A file stem of ``learned_models/inpaint/``: ``"ACS-WFC-F606W-2-32"`` (deepCR's
            ``UNet2BatchNorm(2, 1, 32)``) or ``"ACS-WFC-F606W-3-32"`` (``UNet3BatchNorm``, shipped
            by deepCR 0.3.1 but not loadable there by name).

        Returns
        -------
        InpaintUNet
            In eval mode; depth, widths and channels read from the weights.
        """
        path = deepcr_weights_file(name, kind="inpaint")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{str(path)!r} holds a {type(state).__name__}, expected a state dict")
        try:
            ours = _translate(state)
        except KeyError as err:
            raise ValueError(f"deepCR inpainting model {name!r} ({path}) is not a batch-norm "
                             f"UNet2/UNet3 (unexpected key {err.args[0]!r})") from None
        first = ours["inc.0.weight"]  # (h, n_channels, 3, 3)
        depth = 1 + sum(1 for k in ours if re.fullmatch(r"downs\.\d+\.1\.0\.weight", k))
        net = cls(n_channels=first.shape[1], n_classes=ours["head.weight"].shape[0], hidden=first.shape[0],
                  depth=depth)
        net.load_state_dict(ours)
        return net.eval()


def _translate(state: dict) -> "OrderedDict[str, torch.Tensor]":
    """deepCR ``UNet2BatchNorm`` / ``UNet3BatchNorm`` keys -> `InpaintUNet` keys.

    deepCR: ``module.inc.conv.conv.<i>``, ``module.down<k>.mpconv.1.conv.<i>``,
    ``module.up<n>.up``, ``module.up<n>.conv.conv.<i>``, ``module.outc.conv``; its up blocks are
    numbered so that the last one (full resolution) is ``up8`` (``up7`` before it).
    """
    ours = OrderedDict()
    for key, tensor in state.items():
        if not key.startswith("module."):
            raise KeyError(key)
        rest = key[len("module."):]
        if m := re.fullmatch(r"inc\.conv\.conv\.(\d+\..+)", rest):
            ours[f"inc.{m[1]}"] = tensor
        elif m := re.fullmatch(r"down(\d)\.mpconv\.1\.conv\.(\d+\..+)", rest):
            ours[f"downs.{int(m[1]) - 1}.1.{m[2]}"] = tensor
        elif m := re.fullmatch(r"up(\d)\.up\.(.+)", rest):
            ours[f"ups.{_up_index(m[1], state)}.up.{m[2]}"] = tensor
        elif m := re.fullmatch(r"up(\d)\.conv\.conv\.(\d+\..+)", rest):
            ours[f"ups.{_up_index(m[1], state)}.conv.{m[2]}"] = tensor
        elif m := re.fullmatch(r"outc\.conv\.(.+)", rest):
            ours[f"head.{m[1]}"] = tensor
        else:
            raise KeyError(key)
    return ours


def _up_index(number: str, state: dict) -> int:
    """deepCR's ``up8`` is our last up block, ``up7`` the one before it."""
    n_ups = len({k.split(".")[1] for k in state if re.match(r"module\.up\d\.", k)})
    return n_ups - 1 - (8 - int(number))


def inpaint_with_net(net: InpaintUNet, image, mask, *, tile: int = 1024, device=None, n_jobs: int = 1) -> np.ndarray:
    """Fill the pixels of ``mask`` with ``net``'s prediction (deepCR's inpainting step).

    .. math:: \\hat x = f([x (1 - m), m])\\, m + x (1 - m)

    Parameters
    ----------
    net : InpaintUNet
    image : array_like (H, W)
        In the units the net was trained on (electrons for deepCR's ACS/WFC models), finite.
    mask : array_like (H, W)
        Pixels to fill (nonzero = fill).
    tile : int
        Largest core tile side (px); tiles overlap by `utils.tiling.tile_margin` px, so the result does not depend
        on ``tile``.
    device : torch.device, optional
        Default: the net's device.
    n_jobs : int
        Tiles run on this many threads (``-1``: all cores); the result is the same for any value.

    Returns
    -------
    numpy.ndarray
        float32 (H, W); unmasked pixels equal ``image``.
    """
    x = np.asarray(image, dtype=np.float32)
    m = (np.asarray(mask) != 0).astype(np.float32)
    if x.ndim != 2 or m.shape != x.shape:
        raise ValueError(f"image must be 2-D and mask of its shape, got {x.shape} and {m.shape}")
    if not np.isfinite(x).all():
        raise ValueError("image has non-finite pixels; the inpainting net needs finite input")
    workers = resolve_n_jobs(n_jobs)
    align = 2 ** (net.depth - 1) * 2  # pad so that every level has an even size
    height, width = x.shape
    pad = ((0, -height % align), (0, -width % align))
    inputs = np.stack([np.pad(x * (1 - m), pad, mode="symmetric"), np.pad(m, pad, mode="symmetric")])  # (2, H', W')
    filled = np.zeros(inputs.shape[1:], np.float32)
    margin = tile_margin(net, align=align)
    if device is None:
        device = module_device(net)
    tiles = tile_boxes(inputs.shape[1:], max(align, -(-int(tile) // align) * align), margin, align)

    def run(boxes):
        (r0, r1, c0, c1), (ir0, ir1, ic0, ic1) = boxes
        with torch.inference_mode():  # thread-local: entered in each worker
            block = torch.from_numpy(np.ascontiguousarray(inputs[:, ir0:ir1, ic0:ic1]))[None].to(device)
            out = net(block)[0, 0, r0 - ir0:r1 - ir0, c0 - ic0:c1 - ic0]  # (core h, core w)
        filled[r0:r1, c0:c1] = out.float().cpu().numpy()

    with eval_mode(net):
        run_each(run, tiles, workers)
    filled = filled[:height, :width]
    return (filled * m + x * (1 - m)).astype(np.float32)
