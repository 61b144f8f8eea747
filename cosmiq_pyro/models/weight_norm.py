"""deepCR's weight-normalised mask models in the plain `UNet2Sigmoid`.

deepCR 0.3.1 ships one mask model without batch norm, ``learned_models/mask/WFC3-UVIS.pth``, and
its own ``train`` writes the same kind of file for every custom model: a ``UNet2Sigmoid`` built
from ``weight_norm`` convolutions (Salimans & Kingma 2016), wrapped so that its keys start with
``module.``.  Each such convolution stores a direction ``v`` and a length ``g`` per output
channel ``o``:

.. math:: W_o = g_o \\, \\frac{v_o}{\\lVert v_o \\rVert_2},

the norm taken over the input channels and kernel.  At inference that is an ordinary convolution
with weight ``W``, so `unet_from_weight_norm` folds ``g`` and ``v`` into ``W`` and loads the result
into `UNet2Sigmoid` with ``norm="none"`` (same layers, no normalisation).  deepCR feeds this model a
standardised image, ``(x - mean(x)) / std(x)`` over the whole frame; the `deepCR` facade does the
same for the names in `STANDARDISED`.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

import torch

from .unet import UNet2Sigmoid, deepcr_weights_file

__all__ = ["unet_from_weight_norm", "is_deepcr_weight_norm_file", "STANDARDISED"]

#: deepCR's published mask models that take a standardised image (its ``self.norm``).
STANDARDISED = ("WFC3-UVIS",)

_BLOCKS = {"inc.conv.conv": "inc", "down1.mpconv.1.conv": "down.block", "up8.conv.conv": "up.block"}
_LAYERS = {"0": "conv1", "2": "conv2"}  # deepCR's (conv, ReLU, conv, ReLU) without norm layers


def is_deepcr_weight_norm_file(path) -> bool:
    """Whether ``path`` holds a deepCR weight-norm state dict (what deepCR's ``train`` saves)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file, or one that needs unpickling code: not deepCR's
        return False
    return isinstance(state, dict) and "format" not in state and \
        any(isinstance(k, str) and k.startswith("module.") and k.endswith(".weight_g") for k in state)


def unet_from_weight_norm(source: str = "WFC3-UVIS") -> tuple[UNet2Sigmoid, Path]:
    """deepCR's weight-normalised mask model as a `UNet2Sigmoid` (``norm="none"``).

    Parameters
    ----------
    source : str or os.PathLike
        A published name (``learned_models/mask/<name>.pth`` of the installed ``deepCR``
        package) or the path of a ``.pth`` file deepCR's own ``train`` wrote.  Read with
        ``torch.load(weights_only=True)``; no deepCR code is imported.

    Returns
    -------
    (UNet2Sigmoid, pathlib.Path)
        The net in eval mode (``hidden`` read from the weights) and the weight file.
    """
    name = os.fspath(source)
    path = Path(name) if os.path.isfile(name) else deepcr_weights_file(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not any(k.endswith("weight_g") for k in state):
        raise ValueError(f"deepCR model {name!r} ({path}) is not a weight-normalised network")
    ours = OrderedDict()
    for key, tensor in state.items():
        if m := re.fullmatch(r"module\.(.+)\.(\d)\.(bias|weight_g|weight_v)", key):
            block, layer, leaf = m.groups()
            if block not in _BLOCKS or layer not in _LAYERS:
                raise ValueError(f"deepCR model {name!r}: unexpected key {key!r}")
            target = f"{_BLOCKS[block]}.{_LAYERS[layer]}"
            if leaf == "bias":
                ours[f"{target}.bias"] = tensor
            elif leaf == "weight_v":
                g = state[key[:-1] + "g"]  # (out, 1, 1, 1)
                norm = tensor.flatten(1).norm(dim=1).view(-1, *([1] * (tensor.dim() - 1)))  # ||v_o||
                ours[f"{target}.weight"] = g * tensor / norm
        elif m := re.fullmatch(r"module\.up8\.up\.(weight|bias)", key):
            ours[f"up.upsample.{m[1]}"] = tensor
        elif m := re.fullmatch(r"module\.outc\.conv\.(weight|bias)", key):
            ours[f"head.{m[1]}"] = tensor
        else:
            raise ValueError(f"deepCR model {name!r}: unexpected key {key!r}")
    first = ours["inc.conv1.weight"]  # (h, c_in, 3, 3)
    net = UNet2Sigmoid(n_channels=first.shape[1], n_classes=ours["head.weight"].shape[0], hidden=first.shape[0],
                       norm="none")
    net.load_state_dict(ours)
    return net.eval(), path
