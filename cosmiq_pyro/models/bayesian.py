"""The Bayesian twin: `UNet2SigmoidVI`, its mean-field guide, and the scaled SVI objective.

`UNet2SigmoidVI` *is* a `nets.UNet2Sigmoid` (it subclasses it, with Pyro's `PyroModule` mixed
in), so both nets share one definition of the architecture and one forward graph.  Every
Conv2d / ConvTranspose2d weight and bias is a `PyroSample` with the prior

.. math:: w \\sim \\mathcal{N}(0, \\sigma_p^2 I), \\qquad \\sigma_p = \\text{prior\\_scale},

and the normalisation parameters stay point estimates.  Sample-site names are the dotted module
paths, which are also the plain net's state-dict keys (``"inc.conv1.weight"``, ...).

The likelihood of a CR mask ``y`` given logits ``f_w(x)`` is Bernoulli on every non-ignored pixel,
scaled by ``1 / n_valid`` so that its negative log is the mean binary cross-entropy:

.. math:: -\\log p(y \\mid x, w) \\cdot \\tfrac{1}{n_\\text{valid}}
          = \\mathrm{BCE}_\\text{mean}(f_w(x), y).

`svi_loss` scales the weight sites by ``kl_beta / N_train`` in model *and* guide, so one SVI step
minimises

.. math:: \\mathcal{L} = \\mathrm{BCE}_\\text{mean}
          + \\frac{\\beta}{N_\\text{train}} \\left[\\log q(w) - \\log p(w)\\right],
          \\quad w \\sim q,

a one-sample estimate of ``BCE + beta * KL(q || p) / N_train``.  With ``beta = 1 / (pixels per
image)`` this is exactly the negative ELBO per pixel (the minibatch ELBO divided by the number of
valid pixels in the batch).

Importing this module sets ``pyro.settings.set(module_local_params=True)``: parameters live in
their modules (model, guide), not in Pyro's global param store, so several fitted models can live
in one Jupyter kernel without sharing parameters by name.
"""
from __future__ import annotations

from typing import Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.infer.autoguide.initialization import init_to_value
from pyro.nn import PyroModule, PyroSample
from pyro.nn.module import to_pyro_module_
from pyro.poutine.messenger import Messenger
from torch import nn

from .unet import UNet2Sigmoid

pyro.settings.set(module_local_params=True)

_BAYESIAN_LAYERS = (nn.Conv2d, nn.ConvTranspose2d)


class _NormalPrior:
    """``Normal(0, module.prior_sd)`` over a whole weight tensor, on the module's device.

    The scale is a buffer of the layer, so moving the model moves its priors.
    """

    def __init__(self, shape):
        self.shape = tuple(shape)

    def __call__(self, layer: nn.Module) -> dist.Distribution:
        sd = layer.prior_sd
        return dist.Normal(torch.zeros_like(sd), sd).expand(self.shape).to_event(len(self.shape))


class UNet2SigmoidVI(UNet2Sigmoid, PyroModule):
    """Variational Bayesian twin of `UNet2Sigmoid` (a Pyro model).

    Parameters
    ----------
    n_channels, n_classes, hidden, norm
        As for `UNet2Sigmoid`.
    prior_scale : float
        Standard deviation of the zero-mean Normal prior on every conv weight and bias.

    Notes
    -----
    Calling the module, ``model(x, y=None, ignore=None)``, runs the Pyro model: it draws the
    weights from their sample sites, records ``pyro.deterministic("probs", sigmoid(logits))``
    (shape ``(B, n_classes, H, W)``) and, when ``y`` is given, observes ``y`` through a Bernoulli
    likelihood on the pixels where ``ignore`` is 0, scaled by one over their number.
    Put the model in ``eval()`` mode before predicting (batch norm); `cosmiq_pyro.predict` does.
    """

    def __init__(self, n_channels: int = 1, n_classes: int = 1, hidden: int = 32, norm: str = "batch",
                 prior_scale: float = 1.0):
        if not isinstance(prior_scale, (int, float)) or not prior_scale > 0:
            raise ValueError(f"prior_scale must be a positive number, got {prior_scale!r}")
        super().__init__(n_channels=n_channels, n_classes=n_classes, hidden=hidden, norm=norm)
        to_pyro_module_(self)
        self.prior_scale = float(prior_scale)
        self.weight_sites: tuple[str, ...] = ()
        sites = []
        for path, layer in self.named_modules():
            if isinstance(layer, _BAYESIAN_LAYERS):
                layer.register_buffer("prior_sd", torch.tensor(self.prior_scale))
                for leaf in ("weight", "bias"):
                    shape = getattr(layer, leaf).shape
                    setattr(layer, leaf, PyroSample(_NormalPrior(shape)))
                    sites.append(f"{path}.{leaf}")
        self.weight_sites = tuple(sites)

    @property
    def config(self) -> dict:
        return {**super().config, "prior_scale": self.prior_scale}

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                ignore: torch.Tensor | None = None) -> torch.Tensor:
        """The Pyro model. ``x``, ``y``, ``ignore``: (B, C, H, W) -> probs (B, n_classes, H, W)."""
        logits = self.logits(x)  # one draw of every weight site
        probs = pyro.deterministic("probs", torch.sigmoid(logits))
        if y is not None:
            valid = torch.ones_like(y, dtype=torch.bool) if ignore is None else ignore < 0.5
            n_valid = int(valid.sum())
            with poutine.scale(scale=1.0 / max(n_valid, 1)):
                pyro.sample(
                    "obs",
                    dist.Bernoulli(logits=logits).mask(valid).to_event(logits.dim()),
                    obs=(y > 0.5).to(logits.dtype),
                )
        return probs


def weight_state(source: nn.Module | Mapping[str, torch.Tensor], sites) -> dict[str, torch.Tensor]:
    """Values for ``sites`` taken from a plain net or a state dict (keys = site names).

    Raises a ValueError naming the missing sites or mismatched shapes.
    """
    state = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    missing = [s for s in sites if s not in state]
    if missing:
        raise ValueError(f"init_from lacks weights for sites {missing[:4]}{'...' if len(missing) > 4 else ''}")
    return {s: state[s].detach().clone() for s in sites}


def make_guide(model: UNet2SigmoidVI, init_values: Mapping[str, torch.Tensor],
               init_scale: float = 1e-3) -> AutoNormal:
    """Mean-field Normal guide over every weight site, initialised at ``init_values``.

    ``q(w) = prod_i Normal(w_i; mu_i, sigma_i)`` with ``sigma_i = softplus(rho_i)``
    (`AutoNormal.scale_constraint` is `constraints.softplus_positive`); ``mu`` starts at
    ``init_values`` (a missing site is an error) and every ``sigma`` at ``init_scale``.
    """
    values = {}
    device = next(iter(model.buffers())).device
    for site in model.weight_sites:
        if site not in init_values:
            raise ValueError(f"no initial value for weight site {site!r}")
        values[site] = init_values[site].to(device)
    guide = AutoNormal(model, init_loc_fn=init_to_value(values=values, fallback=None),
                       init_scale=float(init_scale))
    setup_guide(guide, model)
    return guide


def setup_guide(guide: AutoNormal, model: UNet2SigmoidVI) -> None:
    """Build the guide's parameters (a prototype trace on a tiny input) without touching
    batch-norm running statistics."""
    was_training = model.training
    device = next(iter(model.buffers())).device
    model.eval()
    try:
        with torch.no_grad():
            guide(torch.zeros(1, model.n_channels, 4, 4, device=device))
    finally:
        model.train(was_training)


class _ScaleSites(Messenger):
    """Multiply the log-density of the named sample sites (and their ``_unconstrained``
    auxiliaries in an autoguide) by ``scale``; other sites are untouched."""

    def __init__(self, sites, scale: float):
        super().__init__()
        self.sites = frozenset(sites) | frozenset(f"{s}_unconstrained" for s in sites)
        self.scale = scale

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.sites:
            msg["scale"] = self.scale * msg["scale"]


def svi_loss(model: UNet2SigmoidVI, guide: AutoNormal, weight_scale: float, num_particles: int = 1):
    """The differentiable SVI loss ``(x, y, ignore) -> scalar`` described in the module docstring.

    ``weight_scale = kl_beta / N_train`` multiplies ``log p(w)`` in the model and ``log q(w)``
    in the guide.
    """
    if not weight_scale > 0:
        raise ValueError(f"kl_beta / N_train must be > 0, got {weight_scale!r}")
    elbo = Trace_ELBO(num_particles=num_particles, max_plate_nesting=0)
    scaled_model = _ScaleSites(model.weight_sites, weight_scale)(model)
    scaled_guide = _ScaleSites(model.weight_sites, weight_scale)(guide)

    def loss(x, y, ignore=None):
        return elbo.differentiable_loss(scaled_model, scaled_guide, x, y, ignore)

    return loss


def draw_weights(model: UNet2SigmoidVI, guide, num_samples: int) -> dict[str, torch.Tensor]:
    """``num_samples`` posterior draws of every weight site: ``{site: (S, *weight_shape)}``.

    Uses `pyro.infer.Predictive`.  For the package's mean-field `AutoNormal` guide, Predictive
    runs the guide alone, vectorised (``parallel=True``: one guide call inside a plate of size
    ``S`` draws all samples at once); the guide's sample sites carry the model's site names and
    values, so these are the draws ``Predictive(model, guide=guide)`` would return, without one
    model replay per draw.  (``parallel=True`` fails on the model itself: its convolutions do
    not accept a batch of weights.)  Any other guide goes through
    ``Predictive(model, guide=guide)``, one draw after another, on a 4x4 dummy input.
    The model is in eval mode during the call (batch-norm statistics untouched).
    """
    if not (isinstance(num_samples, int) and num_samples >= 1):
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    device = next(iter(model.buffers())).device
    dummy = torch.zeros(1, model.n_channels, 4, 4, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(guide, AutoNormal):
                draws = Predictive(guide, num_samples=num_samples, return_sites=model.weight_sites,
                                   parallel=True)(dummy)
            else:
                draws = Predictive(model, guide=guide, num_samples=num_samples,
                                   return_sites=model.weight_sites)(dummy)
    finally:
        model.train(was_training)
    return {site: draws[site] for site in model.weight_sites}


def probs_given_weights(model: UNet2SigmoidVI, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One forward pass with the weight sites fixed to ``weights`` ({site: tensor}):
    ``x`` (B, C, H, W) -> probabilities (B, n_classes, H, W)."""
    return poutine.condition(model, data=dict(weights))(x)


def sample_probs(model: UNet2SigmoidVI, guide: AutoNormal, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``num_samples`` posterior-predictive probability maps, (S, B, n_classes, H, W).

    One `draw_weights` call, then one forward pass of the Pyro model per draw
    (`probs_given_weights`).  This is the reference path; it also works in train mode
    (`cosmiq_pyro.predict` uses the faster fused passes of `fastnet`).  The caller chooses the
    model's mode (eval for prediction) and the gradient context.
    """
    draws = draw_weights(model, guide, num_samples)
    return torch.stack([probs_given_weights(model, x, {k: v[t] for k, v in draws.items()})
                        for t in range(num_samples)])
