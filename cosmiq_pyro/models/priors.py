"""Weight priors: objects that turn a net's convolutions into Pyro sample sites.

A prior is applied to a module tree (``prior.apply_(net)``, TyXe-style): the tree is converted to
`pyro.nn.PyroModule` in place and every ``Conv2d`` / ``ConvTranspose2d`` weight and bias becomes a
`pyro.nn.PyroSample` whose site name is its dotted module path (= the plain net's state-dict key).
Every prior here is a Normal over the whole tensor,

.. math:: w_{\\ell} \\sim \\mathcal{N}\\left(m_{\\ell}, s_{\\ell}^2 I\\right),

and the priors differ only in ``m`` and ``s`` of layer ``l``:

* `IIDNormalPrior`: ``m = 0``, ``s = scale`` for every layer;
* `KaimingNormalPrior`: ``m = 0``, ``s = gain / sqrt(fan_in)`` of the layer (He et al. 2015),
  with ``fan_in`` as `torch.nn.init` computes it (``weight.size(1) * kernel area``; for a
  transposed convolution that is its output channels times the kernel area); the bias shares the
  layer's ``s``;
* `CentredNormalPrior`: ``m`` = given weights (e.g. deepCR's published ones), ``s = scale``.

``m`` and ``s`` are buffers of each layer (``prior_sd``, and ``prior_loc_weight`` /
``prior_loc_bias`` for the centred prior), read by a ``PyroSample(callable)`` at every draw, so
moving or casting the module moves its priors.  Each prior serialises to a plain dict
(`Prior.to_dict`, `prior_from_dict`) that a checkpoint stores in the model's config; the centred
prior's weights travel in the net's state dict (its buffers), so checkpoints stay tensors and
plain Python (``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import math
from typing import Mapping

import pyro.distributions as dist
import torch
from pyro.nn import PyroSample
from pyro.nn.module import to_pyro_module_
from torch import nn

from ..utils.checks import check_float

__all__ = ["Prior", "IIDNormalPrior", "KaimingNormalPrior", "CentredNormalPrior", "prior_from_dict",
           "make_prior", "PRIOR_NAMES", "BAYESIAN_LAYERS"]

#: Layers whose weight and bias become sample sites.
BAYESIAN_LAYERS = (nn.Conv2d, nn.ConvTranspose2d)
_LEAVES = ("weight", "bias")


def _positive(value, name: str) -> float:
    return check_float(value, name, positive=True)


class _LeafPrior:
    """``PyroSample`` callable: the prior of one leaf (``weight`` or ``bias``) of a layer, built
    from the layer's buffers at each draw (so it follows the layer's device and dtype)."""

    def __init__(self, leaf: str):
        self.leaf = leaf

    def __call__(self, layer: nn.Module) -> dist.Distribution:
        base = layer_distribution(layer, self.leaf)
        return base.to_event(len(base.batch_shape))


def layer_distribution(layer: nn.Module, leaf: str) -> dist.Normal:
    """The prior of ``layer.<leaf>`` as a Normal with batch shape = the tensor's shape.

    Reads the layer's ``prior_sd`` (and ``prior_loc_<leaf>`` when present) buffers.
    """
    sd = layer.prior_sd
    shape = layer._prior_shapes[leaf]
    loc = getattr(layer, f"prior_loc_{leaf}", None)
    if loc is None:
        loc = torch.zeros_like(sd)
    return dist.Normal(loc, sd).expand(shape)


class Prior:
    """Base class: a Normal prior over every conv weight and bias of a net.

    Subclasses define `layer_scale` (the layer's ``s``) and optionally `layer_locs`.
    """

    def layer_scale(self, path: str, layer: nn.Module) -> float:
        raise NotImplementedError

    def layer_locs(self, path: str, layer: nn.Module) -> dict[str, torch.Tensor] | None:
        """Prior means ``{"weight": ..., "bias": ...}`` of a layer, or None for zero."""
        return None

    def apply_(self, net: nn.Module) -> tuple[str, ...]:
        """Make ``net`` (in place) a `PyroModule` whose conv weights and biases are sample sites.

        Returns the site names (dotted module paths, in module order).  Normalisation layers stay
        ordinary parameters (point estimates).
        """
        to_pyro_module_(net)
        sites = []
        for path, layer in net.named_modules():
            if not isinstance(layer, BAYESIAN_LAYERS):
                continue
            ref = layer.weight
            layer.register_buffer("prior_sd", torch.tensor(self.layer_scale(path, layer), dtype=ref.dtype,
                                                           device=ref.device))
            locs = self.layer_locs(path, layer)
            layer._prior_shapes = {leaf: tuple(getattr(layer, leaf).shape) for leaf in _LEAVES}
            for leaf in _LEAVES:
                if locs is not None:
                    layer.register_buffer(f"prior_loc_{leaf}", locs[leaf].detach().to(ref.device, ref.dtype).clone())
                setattr(layer, leaf, PyroSample(_LeafPrior(leaf)))
                sites.append(f"{path}.{leaf}" if path else leaf)
        if not sites:
            raise ValueError(f"{type(net).__name__} has no Conv2d/ConvTranspose2d layer to put a prior on")
        return tuple(sites)

    def to_dict(self) -> dict:
        """Plain-Python description; `prior_from_dict` rebuilds the prior."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()


class IIDNormalPrior(Prior):
    """``w ~ N(0, scale^2)`` for every conv weight and bias (the default, ``scale=1``)."""

    def __init__(self, scale: float = 1.0):
        self.scale = _positive(scale, "prior scale")

    def layer_scale(self, path, layer) -> float:
        return self.scale

    def to_dict(self) -> dict:
        return {"kind": "IIDNormalPrior", "scale": self.scale}


class KaimingNormalPrior(Prior):
    """``w ~ N(0, (gain / sqrt(fan_in))^2)`` per layer: the spread of Kaiming-normal initial
    weights, so the prior keeps activations at unit scale through ReLU layers (``gain = sqrt 2``)."""

    def __init__(self, gain: float = math.sqrt(2.0)):
        self.gain = _positive(gain, "gain")

    def layer_scale(self, path, layer) -> float:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        return self.gain / math.sqrt(fan_in)

    def to_dict(self) -> dict:
        return {"kind": "KaimingNormalPrior", "gain": self.gain}


class CentredNormalPrior(Prior):
    """``w ~ N(w0, scale^2)``: a Normal centred on given weights ``w0`` (e.g. deepCR's published
    mask model), the MOPED-style prior for turning a pretrained net into a Bayesian one.

    Parameters
    ----------
    weights : nn.Module or mapping
        A net or a state dict holding ``w0`` for every conv weight and bias (keys = the site
        names, e.g. ``"inc.conv1.weight"``).
    scale : float
        Prior standard deviation around ``w0``.
    source : str, optional
        Where ``w0`` came from (e.g. ``"deepCR:ACS-WFC"``), recorded in `to_dict`.

    Notes
    -----
    ``w0`` is stored in each layer's ``prior_loc_weight`` / ``prior_loc_bias`` buffers, so a
    checkpoint carries it in its state dict; `prior_from_dict` builds a placeholder that the
    checkpoint's state then fills.
    """

    def __init__(self, weights, scale: float = 0.1, source: str | None = None):
        self.scale = _positive(scale, "prior scale")
        if source is not None and not isinstance(source, str):
            raise TypeError(f"source must be a str or None, got {type(source).__name__}")
        self.source = source
        if weights is _FROM_STATE:
            self._state = None
        else:
            if isinstance(weights, nn.Module):
                weights = weights.state_dict()
            if not isinstance(weights, Mapping):
                raise TypeError(f"weights must be a net or a state dict, got {type(weights).__name__}")
            self._state = {k: v.detach() for k, v in weights.items()}

    def layer_scale(self, path, layer) -> float:
        return self.scale

    def layer_locs(self, path, layer) -> dict[str, torch.Tensor]:
        out = {}
        for leaf in _LEAVES:
            key = f"{path}.{leaf}" if path else leaf
            shape = tuple(getattr(layer, leaf).shape)
            if self._state is None:  # placeholder, filled by a checkpoint's state dict
                out[leaf] = torch.zeros(shape)
                continue
            if key not in self._state:
                raise ValueError(f"CentredNormalPrior weights lack {key!r}")
            if tuple(self._state[key].shape) != shape:
                raise ValueError(f"CentredNormalPrior weights[{key!r}] has shape {tuple(self._state[key].shape)}, "
                                 f"the layer needs {shape}")
            out[leaf] = self._state[key]
        return out

    def to_dict(self) -> dict:
        return {"kind": "CentredNormalPrior", "scale": self.scale, "source": self.source}


_FROM_STATE = object()
_KINDS = {"IIDNormalPrior": IIDNormalPrior, "KaimingNormalPrior": KaimingNormalPrior,
          "CentredNormalPrior": CentredNormalPrior}


def prior_from_dict(spec: Mapping) -> Prior:
    """Rebuild a prior from `Prior.to_dict`.

    A `CentredNormalPrior` comes back as a placeholder (zero means) whose means are filled when
    the checkpoint's net state is loaded into the model built with it.
    """
    if not isinstance(spec, Mapping) or spec.get("kind") not in _KINDS:
        raise ValueError(f"prior must be a dict with 'kind' in {sorted(_KINDS)}, got {spec!r}")
    args = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "CentredNormalPrior":
        return CentredNormalPrior(_FROM_STATE, **args)
    return _KINDS[spec["kind"]](**args)


#: The priors by the short names the command line and the deepCR facade take (`make_prior`).
PRIOR_NAMES = ("iid", "kaiming", "centred")


def make_prior(name: str, scale: float | None = None, *, weights=None, source: str | None = None) -> Prior:
    """A prior by short name, with its one number:

    * ``"iid"``: `IIDNormalPrior` with sd ``scale`` (default 1);
    * ``"kaiming"``: `KaimingNormalPrior` with gain ``scale`` (default sqrt 2: sd sqrt(2 / fan_in));
    * ``"centred"``: `CentredNormalPrior` on ``weights`` (a net or state dict, e.g. the starting
      model of a fine-tuning run) with sd ``scale`` (default 0.1), ``source`` recorded.

    Raises a ValueError for another name or a centred prior without weights.
    """
    if name not in PRIOR_NAMES:
        raise ValueError(f"prior must be one of {PRIOR_NAMES}, got {name!r}")
    if name == "iid":
        return IIDNormalPrior(1.0 if scale is None else scale)
    if name == "kaiming":
        return KaimingNormalPrior(math.sqrt(2.0) if scale is None else scale)
    if weights is None:
        raise ValueError("prior 'centred' is centred on given weights: start from a model (init_from)")
    return CentredNormalPrior(weights, 0.1 if scale is None else scale, source=source)
