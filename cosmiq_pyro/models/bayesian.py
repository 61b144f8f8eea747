"""The Bayesian U-Net: a plain `UNet2Sigmoid` + a weight prior + a mask likelihood (a Pyro model).

`UNet2SigmoidVI` is assembled from parts, in the manner of TyXe's
``VariationalBNN(net, prior, likelihood, guide_builder)``:

* the architecture and forward graph of the plain `unet.UNet2Sigmoid` (the class is a subclass,
  so the two cannot drift apart, and ``isinstance(vi, UNet2Sigmoid)`` holds);
* a prior object (`priors`) that turns every Conv2d / ConvTranspose2d weight and bias into a
  `PyroSample` site named by its dotted module path, which is also the plain net's state-dict
  key (``"inc.conv1.weight"``, ...); normalisation layers stay point estimates;
* a likelihood (`likelihood.BernoulliMaskLikelihood`) that observes the CR mask on the
  non-ignored pixels, per valid pixel;
* the guide is built separately (`guides.make_guide`, used by `fit_svi`).

Changing the prior is one argument::

    UNet2SigmoidVI(hidden=32)                                   # iid N(0, 1)
    UNet2SigmoidVI(hidden=32, prior_scale=0.5)                  # iid N(0, 0.5^2)
    UNet2SigmoidVI(hidden=32, prior=KaimingNormalPrior())       # N(0, 2 / fan_in) per layer
    UNet2SigmoidVI.from_net(deepcr_net, prior=CentredNormalPrior(deepcr_net, 0.05))

The model's parameters live in the module (Pyro's module-local params, switched on only inside
the model's own construction and calls: `local`), so several fitted models can share a kernel
and a user's own Pyro code keeps the global param store.
"""
from __future__ import annotations

import contextlib
from typing import Mapping

import pyro
import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule
from torch import nn

from ..utils.checks import check_int, check_seed
from ..utils.torchtools import eval_mode, module_device, seeded
from .likelihood import BernoulliMaskLikelihood
from .local import LocalParams, local_params
from .priors import CentredNormalPrior, IIDNormalPrior, Prior, layer_distribution, prior_from_dict
from .unet import UNet2Sigmoid

__all__ = ["UNet2SigmoidVI", "weight_state", "draw_weights", "probs_given_weights", "sample_probs",
           "PRETRAINED_PRIOR_SCALE"]

#: Prior standard deviation around published weights (`UNet2SigmoidVI.from_deepcr`).  deepCR's
#: ACS-WFC conv weights have standard deviations 0.5-1.2 per layer (median ``|w|`` 0.29-0.50), so
#: 0.1 lets every weight move by a fraction of its size.  With it the learned widths end at the
#: prior scale for most weights, detection kept deepCR-fine-tuned levels, and ECE was the lowest of
#: the priors tried (docs/validation.md, "Learned posterior widths").
PRETRAINED_PRIOR_SCALE = 0.1


class UNet2SigmoidVI(LocalParams, UNet2Sigmoid, PyroModule):
    """Variational Bayesian twin of `UNet2Sigmoid` (a Pyro model).

    Parameters
    ----------
    n_channels, n_classes, hidden, norm
        As for `UNet2Sigmoid`.
    prior : Prior or dict, optional
        The weight prior (`priors.IIDNormalPrior`, `priors.KaimingNormalPrior`,
        `priors.CentredNormalPrior`, or its `to_dict`).  Default ``IIDNormalPrior(prior_scale)``.
    prior_scale : float, optional
        Shorthand for ``prior=IIDNormalPrior(prior_scale)`` (default 1); not with ``prior``.
    likelihood : BernoulliMaskLikelihood, optional
        The observation model (default: `likelihood.BernoulliMaskLikelihood`).

    Notes
    -----
    Calling the module, ``model(x, y=None, ignore=None)``, runs the Pyro model: it draws the
    weights from their sample sites, records ``pyro.deterministic("probs", sigmoid(logits))``
    (shape ``(B, n_classes, H, W)``) and, when ``y`` is given, observes it through the likelihood.
    Put the model in ``eval()`` mode before predicting (batch norm); `cosmiq_pyro.predict` does.
    """

    def __init__(self, n_channels: int = 1, n_classes: int = 1, hidden: int = 32, norm: str = "batch",
                 prior: Prior | Mapping | None = None, prior_scale: float | None = None,
                 likelihood: BernoulliMaskLikelihood | None = None):
        if prior is not None and prior_scale is not None:
            raise ValueError("give prior= or prior_scale=, not both (prior_scale=s means prior=IIDNormalPrior(s))")
        if prior is None:
            prior = IIDNormalPrior(1.0 if prior_scale is None else prior_scale)
        elif isinstance(prior, Mapping):
            prior = prior_from_dict(prior)
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a cosmiq_pyro.models.priors.Prior or its dict, got {type(prior).__name__}")
        likelihood = BernoulliMaskLikelihood() if likelihood is None else likelihood
        if not callable(likelihood):
            raise TypeError(f"likelihood must be callable (logits, y, ignore), got {type(likelihood).__name__}")
        with local_params():
            super().__init__(n_channels=n_channels, n_classes=n_classes, hidden=hidden, norm=norm)
            self.prior = prior
            self.likelihood = likelihood
            self.weight_sites: tuple[str, ...] = prior.apply_(self)

    @classmethod
    def from_net(cls, net: UNet2Sigmoid, prior: Prior | Mapping | None = None, **kwargs) -> "UNet2SigmoidVI":
        """A Bayesian twin of the plain ``net``: same architecture, its normalisation layers
        (parameters and running statistics) copied; ``prior`` as in the constructor."""
        if not isinstance(net, UNet2Sigmoid) or isinstance(net, UNet2SigmoidVI):
            raise TypeError(f"net must be a plain UNet2Sigmoid, got {type(net).__name__}")
        model = cls(n_channels=net.n_channels, n_classes=net.n_classes, hidden=net.hidden, norm=net.norm,
                    prior=prior, **kwargs)
        copy_point_estimates(model, net)
        return model.to(module_device(net))

    @classmethod
    def from_deepcr(cls, name: str = "ACS-WFC", prior_scale: float = PRETRAINED_PRIOR_SCALE) -> "UNet2SigmoidVI":
        """The Bayesian twin of one of deepCR's published mask models, its prior centred there.

        The prior is ``w ~ N(w_deepCR, prior_scale^2)`` (`priors.CentredNormalPrior`, source
        ``"deepCR:<name>"``); deepCR's normalisation layers (affine parameters and running
        statistics) are copied.  `cosmiq_pyro.fit_svi` starts the posterior means of such a model
        at the prior's centre, i.e. at deepCR's weights.

        Parameters
        ----------
        name : str
            A batch-norm mask model of the ``deepCR`` package (`unet.UNet2Sigmoid.from_deepcr`).
        prior_scale : float
            Prior standard deviation around deepCR's weights (`PRETRAINED_PRIOR_SCALE`).
        """
        net = UNet2Sigmoid.from_deepcr(name)
        return cls.from_net(net, prior=CentredNormalPrior(net, prior_scale, source=f"deepCR:{name}"))

    def prior_centre(self) -> dict[str, torch.Tensor] | None:
        """``{site: m}``, the means of a prior centred on given weights (`priors.CentredNormalPrior`),
        or None for a zero-mean prior."""
        centre = {}
        for site in self.weight_sites:
            layer, leaf = site.rsplit(".", 1)
            loc = getattr(self.get_submodule(layer), f"prior_loc_{leaf}", None)
            if loc is None:
                return None
            centre[site] = loc.detach().clone()
        return centre

    @property
    def prior_scale(self) -> float | None:
        """The prior's ``scale`` (None for a prior without one, e.g. `KaimingNormalPrior`)."""
        return getattr(self.prior, "scale", None)

    @property
    def config(self) -> dict:
        return {**super().config, "prior": self.prior.to_dict()}

    def prior_distribution(self, site: str):
        """The prior of one weight site as a Normal with the weight's batch shape."""
        if site not in self.weight_sites:
            raise ValueError(f"unknown weight site {site!r}")
        layer, leaf = site.rsplit(".", 1)
        return layer_distribution(self.get_submodule(layer), leaf)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                ignore: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The Pyro model. ``x``, ``y``, ``ignore``, ``weight`` (per-pixel likelihood weights, or
        None): (B, C, H, W) -> probs (B, n_classes, H, W)."""
        logits = self.logits(x)  # one draw of every weight site
        probs = pyro.deterministic("probs", torch.sigmoid(logits))
        if y is not None:
            if weight is None:
                self.likelihood(logits, y, ignore)
            else:
                self.likelihood(logits, y, ignore, weight)
        return probs


def weight_state(source: nn.Module | Mapping[str, torch.Tensor], sites) -> dict[str, torch.Tensor]:
    """Values for ``sites`` taken from a plain net or a state dict (keys = site names).

    Raises a ValueError naming the missing sites.
    """
    state = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    missing = [s for s in sites if s not in state]
    if missing:
        raise ValueError(f"init_from lacks weights for sites {missing[:4]}{'...' if len(missing) > 4 else ''}")
    return {s: state[s].detach().clone() for s in sites}


def copy_point_estimates(model: UNet2SigmoidVI, source) -> None:
    """Copy the normalisation layers' parameters and running statistics of ``source`` (a plain net
    or its state dict) into ``model`` (the prior buffers are kept)."""
    state = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    ours = model.state_dict()
    wanted = [k for k in ours if ".prior_" not in k and k.rsplit(".", 1)[-1] != "prior_sd"]
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"init_from lacks {missing[:4]} (is it the same architecture as {model.config}?)")
    for key in wanted:
        if state[key].shape != ours[key].shape:
            raise ValueError(f"init_from[{key!r}] has shape {tuple(state[key].shape)}, "
                             f"the model needs {tuple(ours[key].shape)}")
    model.load_state_dict({**ours, **{k: state[k] for k in wanted}})


def draw_weights(model: UNet2SigmoidVI, guide, num_samples: int, seed: int | None = None) -> dict[str, torch.Tensor]:
    """``num_samples`` posterior draws of every weight site: ``{site: (S, *weight_shape)}``.

    Uses `pyro.infer.Predictive`.  For the package's mean-field `AutoNormal` guide, Predictive
    runs the guide alone, vectorised (``parallel=True``: one guide call inside a plate of size
    ``S`` draws all samples at once); the guide's sample sites carry the model's site names and
    values, so these are the draws ``Predictive(model, guide=guide)`` would return, without one
    model replay per draw.  (``parallel=True`` fails on the model itself: its convolutions do
    not accept a batch of weights.)  Any other guide goes through
    ``Predictive(model, guide=guide)``, one draw after another, on a 4x4 dummy input.
    The model is in eval mode during the call (batch-norm statistics untouched).

    ``seed``: draw with torch's RNG seeded by it, the global RNG state restored afterwards (the
    same seed gives the same draws); None draws from the global stream (e.g. inside a fit that
    seeded it).
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    device = module_device(model)
    dummy = torch.zeros(1, model.n_channels, 4, 4, device=device)
    rng = contextlib.nullcontext() if seed is None else seeded(check_seed(seed), device)
    with rng, eval_mode(model), torch.no_grad():
        if isinstance(guide, AutoNormal):
            draws = Predictive(guide, num_samples=num_samples, return_sites=model.weight_sites,
                               parallel=True)(dummy)
        else:
            draws = Predictive(model, guide=guide, num_samples=num_samples,
                               return_sites=model.weight_sites)(dummy)
    return {site: draws[site] for site in model.weight_sites}


def probs_given_weights(model: UNet2SigmoidVI, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One forward pass with the weight sites fixed to ``weights`` ({site: tensor}):
    ``x`` (B, C, H, W) -> probabilities (B, n_classes, H, W)."""
    return poutine.condition(model, data=dict(weights))(x)


def sample_probs(model: UNet2SigmoidVI, guide, x: torch.Tensor, num_samples: int,
                 seed: int | None = None) -> torch.Tensor:
    """``num_samples`` posterior-predictive probability maps, (S, B, n_classes, H, W).

    One `draw_weights` call, then one forward pass of the Pyro model per draw
    (`probs_given_weights`).  This is the reference path; it also works in train mode
    (`cosmiq_pyro.predict` uses the faster fused passes of `fused`).  The caller chooses the
    model's mode (eval for prediction) and the gradient context; ``seed`` as for `draw_weights`.
    """
    draws = draw_weights(model, guide, num_samples, seed=seed)
    return torch.stack([probs_given_weights(model, x, {k: v[t] for k, v in draws.items()})
                        for t in range(num_samples)])
