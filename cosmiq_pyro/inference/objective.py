"""The SVI objective: Pyro's `Trace_ELBO` with the weight sites scaled by ``kl_beta / N_train``.

The model's likelihood is already per valid pixel of the minibatch
(`cosmiq_pyro.models.likelihood.BernoulliMaskLikelihood`).  `svi_loss` multiplies ``log p(w)`` in
the model and ``log q(w)`` in the guide by ``s = kl_beta / N_train``, so one step minimises

.. math:: \\mathcal{L} = \\mathrm{BCE}_\\text{mean}
          + \\frac{\\beta}{N_\\text{train}} \\left[\\log q(w) - \\log p(w)\\right],
          \\quad w \\sim q,

a one-sample (or ``num_particles``-sample) estimate of ``BCE + beta * KL(q || p) / N_train``.
With ``beta = 1 / (pixels per image)`` this is exactly the negative ELBO per pixel (the minibatch
ELBO divided by the number of valid pixels in the batch).
"""
from __future__ import annotations

from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger

from ..models.guides import auxiliary_sites

__all__ = ["svi_loss", "ScaleSites"]


class ScaleSites(Messenger):
    """Multiply the log-density of the named sample sites by ``scale``; other sites untouched."""

    def __init__(self, sites, scale: float):
        super().__init__()
        self.sites = frozenset(sites)
        self.scale = scale

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.sites:
            msg["scale"] = self.scale * msg["scale"]


def svi_loss(model, guide, weight_scale: float, num_particles: int = 1):
    """The differentiable SVI loss ``(x, y, ignore[, weight]) -> scalar`` of the module docstring
    (``weight``: per-pixel likelihood weights, `likelihood.BernoulliMaskLikelihood`).

    Parameters
    ----------
    model : UNet2SigmoidVI
    guide : AutoNormal (from `cosmiq_pyro.models.guides.make_guide`)
    weight_scale : float
        ``kl_beta / N_train`` (> 0): multiplies ``log p(w)`` in the model and ``log q(w)`` in
        the guide (the guide's auxiliary sites that carry the weights' density).
    num_particles : int
        Monte Carlo draws of ``w`` averaged per step.
    """
    if not weight_scale > 0:
        raise ValueError(f"kl_beta / N_train must be > 0, got {weight_scale!r}")
    elbo = Trace_ELBO(num_particles=num_particles, max_plate_nesting=0)
    weight_sites = frozenset(model.weight_sites)
    scaled_model = ScaleSites(weight_sites, weight_scale)(model)
    scaled_guide = ScaleSites(weight_sites | auxiliary_sites(weight_sites), weight_scale)(guide)

    def loss(x, y, ignore=None, weight=None):
        return elbo.differentiable_loss(scaled_model, scaled_guide, x, y, ignore, weight)

    return loss
