"""The variational posterior (guide) over a Bayesian model's weight sites.

`make_guide` builds the package's default: Pyro's mean-field `AutoNormal`,

.. math:: q(w) = \\prod_i \\mathcal{N}(w_i;\\, \\mu_i, \\sigma_i^2), \\qquad
          \\sigma_i = \\mathrm{softplus}(\\rho_i),

with ``mu`` initialised at given values (``init_to_value(..., fallback=None)``: a site without a
value is an error) and every ``sigma`` at ``init_scale``.

This module is the only one that knows AutoNormal's private layout (its auxiliary sample sites
``<site>_unconstrained`` and its state-dict keys ``locs.<site>_unconstrained`` /
``scales.<site>_unconstrained``).  Everyone else asks it: `guide_locs`, `guide_scales`,
`posterior_sd`, `locs_from_state`, `auxiliary_sites`.
"""
from __future__ import annotations

import functools
from typing import Iterable, Mapping

import torch
from pyro.infer.autoguide import AutoNormal
from pyro.infer.autoguide.initialization import init_to_value

from ..utils.checks import check_float
from ..utils.torchtools import eval_mode, module_device
from .local import LocalParams

__all__ = ["MeanFieldGuide", "make_guide", "setup_guide", "guide_locs", "guide_scales", "posterior_sd",
           "locs_from_state", "auxiliary_sites", "guide_param_groups", "DEFAULT_INIT_SCALE"]

#: Initial posterior standard deviation of every weight (well below the Kaiming spread of these
#: convolutions; Pyro's default 0.1 is larger).
DEFAULT_INIT_SCALE = 1e-3


class MeanFieldGuide(LocalParams, AutoNormal):
    """`pyro.infer.autoguide.AutoNormal` whose parameters live in the guide (module-local), built
    and called without changing Pyro's global settings."""


def make_guide(model, init_values: Mapping[str, torch.Tensor], init_scale: float = DEFAULT_INIT_SCALE) -> AutoNormal:
    """Mean-field Normal guide over every weight site of ``model``, initialised at ``init_values``.

    Parameters
    ----------
    model : UNet2SigmoidVI
        Its ``weight_sites`` name the sites.
    init_values : mapping
        ``{site: tensor}`` initial means for every weight site (a missing site is an error).
    init_scale : float
        Initial ``sigma`` of every weight (> 0).

    Returns
    -------
    AutoNormal
        Its parameters built (a prototype trace on a tiny input, batch-norm statistics untouched).
    """
    init_scale = check_float(init_scale, "init_scale", positive=True)
    device = module_device(model)
    values = {}
    for site in model.weight_sites:
        if site not in init_values:
            raise ValueError(f"no initial value for weight site {site!r}")
        values[site] = init_values[site].to(device)
    guide = MeanFieldGuide(model, init_loc_fn=init_to_value(values=values, fallback=None),
                           init_scale=float(init_scale))
    setup_guide(guide, model)
    return guide


def setup_guide(guide, model) -> None:
    """Build the guide's parameters (a prototype trace on a tiny input) without touching
    batch-norm running statistics."""
    device = module_device(model)
    with eval_mode(model), torch.no_grad():
        guide(torch.zeros(1, model.n_channels, 4, 4, device=device))


def guide_param_groups(guide) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """The guide's parameters split into ``(locations, scales)``: the means ``mu`` and the
    unconstrained scales ``rho`` (``sigma = softplus(rho)``), e.g. for separate learning rates."""
    _check(guide)
    locs, scales = [], []
    for name, param in guide.named_parameters():
        (scales if name.startswith("scales.") else locs).append(param)
    return locs, scales


def _site_param(container, site: str) -> torch.Tensor:
    return functools.reduce(getattr, site.split("."), container)


def _check(guide) -> None:
    if not isinstance(guide, AutoNormal):
        raise TypeError(f"guide must be a pyro AutoNormal (from make_guide / fit_svi / load), "
                        f"got {type(guide).__name__}")


def guide_locs(guide, sites: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Posterior means ``{site: mu}`` (detached), for ``sites`` or every site of the guide."""
    _check(guide)
    sites = list(guide._event_dims) if sites is None else list(sites)
    return {s: _site_param(guide.locs, s).detach() for s in sites}


def guide_scales(guide, sites: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Posterior standard deviations ``{site: sigma = softplus(rho)}`` (detached)."""
    _check(guide)
    sites = list(guide._event_dims) if sites is None else list(sites)
    return {s: _site_param(guide.scales, s).detach() for s in sites}


def posterior_sd(guide, site: str) -> torch.Tensor:
    """``sigma`` of one weight site (detached; shape of the weight)."""
    return guide_scales(guide, [site])[site]


def locs_from_state(state: Mapping[str, torch.Tensor], sites: Iterable[str]) -> dict[str, torch.Tensor]:
    """Means ``{site: mu}`` read from a guide's saved state dict (to rebuild it before loading).

    Raises a ValueError naming the first missing site.
    """
    out = {}
    for s in sites:
        key = f"locs.{s}_unconstrained"
        if key not in state:
            raise ValueError(f"guide state has no posterior mean for weight site {s!r}")
        out[s] = state[key]
    return out


def auxiliary_sites(sites: Iterable[str]) -> frozenset[str]:
    """The guide's own sample sites behind model sites ``sites`` (``<site>_unconstrained``): the
    sites whose log-density is ``log q(w)``."""
    return frozenset(f"{s}_unconstrained" for s in sites)
