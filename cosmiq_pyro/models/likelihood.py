"""The likelihood of a CR mask given the network's logits (a Pyro observe statement)."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

__all__ = ["BernoulliMaskLikelihood"]


class BernoulliMaskLikelihood:
    """Bernoulli likelihood of a binary CR mask on the non-ignored pixels, per valid pixel.

    For logits ``z = f_w(x)`` of shape (B, 1, H, W), labels ``y`` in {0, 1} and an ignore mask
    (1 = excluded: bad pixels, saturation, padding), the site ``"obs"`` records

    .. math:: \\log p(y \\mid x, w) \\cdot \\frac{1}{n_\\text{valid}}
              = \\frac{1}{n_\\text{valid}} \\sum_{i:\\,\\text{ignore}_i = 0}
                \\left[y_i \\log \\sigma(z_i) + (1 - y_i) \\log(1 - \\sigma(z_i))\\right]
              = -\\mathrm{BCE}_\\text{mean},

    with ``n_valid`` the number of non-ignored pixels *of the minibatch* (at least 1).  So the
    likelihood term of the SVI loss is the mean binary cross-entropy over the batch's valid
    pixels, the deterministic twin's loss; together with weight sites scaled by
    ``kl_beta / N_train`` (`cosmiq_pyro.inference.objective`) one step minimises
    ``BCE_mean + kl_beta * KL(q || p) / N_train`` (one-sample estimate).  Ignored pixels are
    masked out of the log-density (`Distribution.mask`), not dropped, so shapes stay fixed.

    With per-pixel weights ``u_i > 0`` (``weight``, like ``y``; e.g. `data.SimulatedDataset`'s
    ``star_core_weight``) each valid pixel's log-density counts ``u_i`` times, still divided by
    ``n_valid``: a weighted likelihood, no longer the ELBO's, that makes the fit spend more of
    the net on a group of pixels.  Weighting both classes of a group alike leaves the pointwise
    optimum, the probability of a CR given the input, where it was.
    """

    site = "obs"

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, ignore: torch.Tensor | None = None,
                 weight: torch.Tensor | None = None) -> None:
        """Observe ``y`` (B, C, H, W) given ``logits`` (B, C, H, W); ``ignore`` and ``weight``
        like ``y`` or None."""
        valid = torch.ones_like(y, dtype=torch.bool) if ignore is None else ignore < 0.5
        n_valid = int(valid.sum())
        pixels = dist.Bernoulli(logits=logits).mask(valid)
        if weight is None:  # one scale: the whole mask is one event
            scale, pixels = 1.0 / max(n_valid, 1), pixels.to_event(logits.dim())
        else:  # per-pixel scales: the pixels stay batch dimensions of the site
            scale = weight.to(logits.dtype) / max(n_valid, 1)
        with poutine.scale(scale=scale):
            pyro.sample(self.site, pixels, obs=(y > 0.5).to(logits.dtype))

    def to_dict(self) -> dict:
        return {"kind": "BernoulliMaskLikelihood"}

    def __repr__(self) -> str:
        return "BernoulliMaskLikelihood()"
