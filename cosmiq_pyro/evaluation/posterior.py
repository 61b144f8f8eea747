"""What the weight posterior learned: an ArviZ bridge and a per-layer summary table.

This is the only module of the package that imports ArviZ (0.23.x on Python 3.11).  ArviZ 1.x
changed ``from_dict`` (one nested dict) and several plot names; every call sits here so the
move is one file.

* `to_inference_data` puts posterior and prior draws of chosen weight sites (and, optionally,
  posterior-predictive CR probabilities at chosen pixels) into an `arviz.InferenceData`, ready
  for ``az.summary``, ``az.plot_forest`` and ``az.plot_posterior``.
* `posterior_table` summarises the mean-field posterior ``q(w) = prod_i N(mu_i, sigma_i^2)``
  layer by layer, with the closed-form KL divergence to the model's prior ``N(m, sigma_p^2)``.

Both take a `FitResult` from `fit_svi` / `load`, or an ``AutoNormal`` guide with its ``model=``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd
import torch
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoNormal
from torch import nn
from torch.distributions import Normal, kl_divergence

from .._version import __version__
from ..inference.draws import weight_chunks
from ..models.bayesian import UNet2SigmoidVI, probs_given_weights
from ..models.guides import guide_locs, guide_scales
from ..models.registry import resolve
from ..models.results import FitResult
from ..utils.checks import check_int
from ..utils.tiling import TILE_ALIGN, pad_to_grid, tile_margin
from ..utils.torchtools import eval_mode, module_device, seeded

__all__ = ["DEFAULT_SITES", "to_inference_data", "posterior_table"]

#: A readable default: the first layer's 3x3 kernels (what the net "looks at" first) and the
#: 1x1 output convolution that turns the last features into the CR logit.
DEFAULT_SITES = ("inc.conv1.weight", "head.weight", "head.bias")



def _resolve(fit_or_guide, model) -> tuple[UNet2SigmoidVI, AutoNormal]:
    """(model, guide) from a FitResult, or from an AutoNormal guide plus ``model``."""
    if isinstance(fit_or_guide, FitResult):
        if fit_or_guide.guide is None:
            raise ValueError("fit_or_guide is a deterministic FitResult (guide=None): it has no weight "
                             "posterior; pass the result of fit_svi or of load() on a VI checkpoint")
        if model is not None and model is not fit_or_guide.model:
            raise ValueError("model= was given with a FitResult that holds a different model; "
                             "pass one or the other")
        return resolve(fit_or_guide)
    if isinstance(fit_or_guide, AutoNormal):
        if model is None:
            raise ValueError("fit_or_guide is a guide: pass its model too, "
                             "to_inference_data(guide, model=vi_model)")
        if not isinstance(model, UNet2SigmoidVI):
            raise TypeError(f"model must be a UNet2SigmoidVI, got {type(model).__name__}")
        return resolve(model, fit_or_guide)
    raise TypeError(f"fit_or_guide must be a FitResult from fit_svi/load or a pyro AutoNormal guide, "
                    f"got {type(fit_or_guide).__name__}")


def _layer_of(model: UNet2SigmoidVI, site: str) -> tuple[str, nn.Module]:
    layer = site.rsplit(".", 1)[0]
    return layer, model.get_submodule(layer)


def _site_dims(model: UNet2SigmoidVI, site: str) -> list[str]:
    """Dimension names of a weight site, prefixed by its layer so each has one size.

    Conv2d weights are (out_channel, in_channel, ky, kx); torch stores ConvTranspose2d
    weights as (in_channel, out_channel, ky, kx); biases are (out_channel,).
    """
    layer, module = _layer_of(model, site)
    if site.endswith(".bias"):
        names = ["out_channel"]
    elif isinstance(module, nn.ConvTranspose2d):
        names = ["in_channel", "out_channel", "ky", "kx"]
    else:
        names = ["out_channel", "in_channel", "ky", "kx"]
    return [f"{layer}.{name}" for name in names]


def _check_sites(model: UNet2SigmoidVI, sites) -> tuple[str, ...]:
    if sites is None:
        return DEFAULT_SITES
    if isinstance(sites, str):
        sites = (sites,)
    if not isinstance(sites, Sequence) or not sites:
        raise ValueError(f"sites must be a non-empty sequence of weight-site names, got {sites!r}")
    unknown = [s for s in sites if s not in model.weight_sites]
    if unknown:
        raise ValueError(f"unknown weight site(s) {unknown}; the model has {list(model.weight_sites)}")
    if len(set(sites)) != len(sites):
        raise ValueError(f"sites lists a name twice: {list(sites)}")
    return tuple(sites)


def _check_pixels(pixels, shape) -> tuple[list[str], np.ndarray]:
    """Labels and an (K, 2) int array of (row, col) from a mapping or a sequence of pairs."""
    if isinstance(pixels, Mapping):
        labels, coords = [str(k) for k in pixels], list(pixels.values())
    elif isinstance(pixels, Sequence) and not isinstance(pixels, str):
        coords = list(pixels)
        labels = []
        for rc in coords:
            try:
                labels.append(f"row {int(rc[0])}, col {int(rc[1])}")
            except (TypeError, ValueError, IndexError):
                labels.append(repr(rc))  # reported by the shape check below
    else:
        raise TypeError(f"pixels must be a mapping label -> (row, col) or a sequence of (row, col), "
                        f"got {type(pixels).__name__}")
    if not coords:
        raise ValueError("pixels is empty; give at least one (row, col)")
    if len(set(labels)) != len(labels):
        raise ValueError(f"pixels has repeated labels: {labels}")
    rc = np.asarray(coords)
    if rc.ndim != 2 or rc.shape[1] != 2 or not np.issubdtype(rc.dtype, np.integer):
        raise ValueError(f"pixels must be integer (row, col) pairs, got {coords!r}")
    outside = (rc[:, 0] < 0) | (rc[:, 0] >= shape[0]) | (rc[:, 1] < 0) | (rc[:, 1] >= shape[1])
    if outside.any():
        raise ValueError(f"pixel(s) {rc[outside].tolist()} lie outside the image of shape {shape}")
    return labels, rc.astype(np.int64)


def _check_image(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    x = np.asarray(image)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"image must be a non-empty 2-D (H, W) array in electrons, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"image must hold real numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("image has non-finite pixels; replace them first (predict() does this "
                         "for pixels in its ignore mask)")
    return x.astype(np.float32)


def _pixel_probs(model: UNet2SigmoidVI, draws: Mapping[str, torch.Tensor], image: np.ndarray,
                 rc: np.ndarray) -> np.ndarray:
    """CR probability at pixels ``rc`` (K, 2) for every weight draw: (S, K) float64.

    Each pixel is evaluated on a crop of the image (padded as `predict` pads it) that starts on an
    even row and column, so the 2x2 pooling grid is the image's, and reaches the tile margin
    (`utils.tiling.tile_margin`: the network's receptive field) beyond the pixel's 4x4 cell:
    the values equal `predict`'s per-draw maps to float rounding.  With group norm (statistics
    over the whole input) the whole image is used instead.
    """
    padded = pad_to_grid(image)
    full = (0, padded.shape[0], 0, padded.shape[1])
    margin = tile_margin(model)  # a multiple of TILE_ALIGN: crops start on the pooling grid
    groups: dict[tuple[int, int], list[tuple[int, tuple[int, int, int, int]]]] = {}
    for k, (r, c) in enumerate(rc):
        if model.norm == "group":
            box = full
        else:
            r4, c4 = r // TILE_ALIGN * TILE_ALIGN, c // TILE_ALIGN * TILE_ALIGN
            box = (max(r4 - margin, 0), min(r4 + TILE_ALIGN + margin, padded.shape[0]),
                   max(c4 - margin, 0), min(c4 + TILE_ALIGN + margin, padded.shape[1]))
        groups.setdefault((box[1] - box[0], box[3] - box[2]), []).append((k, box))
    device = module_device(model)
    batches = []
    for members in groups.values():
        crops = np.stack([padded[r0:r1, c0:c1] for _, (r0, r1, c0, c1) in members])
        batches.append((members, torch.from_numpy(crops)[:, None].to(device)))  # (B, 1, h, w)
    n_draws = len(next(iter(draws.values())))
    out = np.empty((n_draws, len(rc)), dtype=np.float64)
    for t in range(n_draws):
        weights = {site: w[t] for site, w in draws.items()}
        for members, x in batches:
            probs = probs_given_weights(model, x, weights)[:, 0]  # (B, h, w)
            for b, (k, (r0, _, c0, _)) in enumerate(members):
                out[t, k] = float(probs[b, rc[k, 0] - r0, rc[k, 1] - c0])
    return out


def _prior_seed(seed: int) -> int:
    """A seed for the prior draws, independent of the posterior stream of ``seed``."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def _in_eval(model: nn.Module, fn):
    """``fn()`` with ``model`` in eval mode (batch-norm statistics untouched) and no gradients."""
    with eval_mode(model), torch.no_grad():
        return fn()


def to_inference_data(fit_or_guide, num_samples: int = 200, sites=None, seed: int = 0, model=None,
                      pixels=None, image=None) -> az.InferenceData:
    """Posterior and prior draws of weight sites as an `arviz.InferenceData`.

    Parameters
    ----------
    fit_or_guide : FitResult or pyro.infer.autoguide.AutoNormal
        A fitted VI model (`fit_svi`, `load`), or its guide (then ``model`` is required).
    num_samples : int
        Draws per group (one chain).
    sites : sequence of str, optional
        Weight sites to include (names as in ``model.weight_sites``, e.g.
        ``"down.block.conv1.weight"``).  Default `DEFAULT_SITES`: the first layer's 3x3 kernels
        and the 1x1 output convolution.
    seed : int
        Seed of the draws: the posterior draws are those `predict` makes with ``T=num_samples``
        and the same seed (so the posterior-predictive values below average to its ``prob``).
    model : UNet2SigmoidVI, optional
        The model of ``fit_or_guide`` when a guide is given.
    pixels : mapping of label -> (row, col), or sequence of (row, col), optional
        Pixels of ``image`` at which to record the CR probability of every posterior draw.
    image : array_like, (H, W), optional
        Image in electrons, required with ``pixels``.

    Returns
    -------
    arviz.InferenceData
        * ``posterior``: one variable per site, shape ``(chain=1, draw, *weight_shape)``, drawn
          from the guide ``q(w)`` with `pyro.infer.Predictive`, in `predict`'s seeded blocks
          (`inference.draws.weight_chunks`);
        * ``prior``: the same sites drawn from the model's prior (`UNet2SigmoidVI.prior`);
        * with ``pixels``: ``posterior_predictive`` variable ``prob`` (chain, draw, pixel), the
          per-draw CR probability ``sigma(f_w(x))`` at each pixel, and ``constant_data``
          ``pixel_row``, ``pixel_col``.

        Dimensions are named after the layer and the axis, e.g. ``inc.conv1.out_channel``,
        ``inc.conv1.in_channel``, ``inc.conv1.ky``, ``inc.conv1.kx`` (ConvTranspose2d weights
        are stored in_channel first, as torch stores them); a layer's weight and bias share
        its ``out_channel`` dimension.

    Examples
    --------
    >>> idata = to_inference_data(fit, num_samples=200)            # doctest: +SKIP
    >>> az.summary(idata, var_names=["head.weight"], kind="stats")  # doctest: +SKIP
    """
    model, guide = _resolve(fit_or_guide, model)
    num_samples = check_int(num_samples, "num_samples", 1)
    seed = check_int(seed, "seed", 0)
    sites = _check_sites(model, sites)
    if (pixels is None) != (image is None):
        raise ValueError("pixels and image go together: give both (the image in electrons and the "
                         "(row, col) pixels to follow) or neither")
    if image is not None:
        image = _check_image(image)
        labels, rc = _check_pixels(pixels, image.shape)

    device = module_device(model)
    guide.to(device)
    with seeded(seed, device):
        draws = next(weight_chunks(model, guide, num_samples, seed, chunk=num_samples))  # {site: (S, *shape)}
        predictive = None if image is None else _in_eval(model, lambda: _pixel_probs(model, draws, image, rc))
        torch.manual_seed(_prior_seed(seed))
        dummy = torch.zeros(1, model.n_channels, 4, 4, device=device)
        prior = _in_eval(model, lambda: Predictive(model, num_samples=num_samples, return_sites=sites)(dummy))

    def group(samples):
        return {s: samples[s].detach().cpu().numpy()[None] for s in sites}  # (1, S, *shape)

    dims = {s: _site_dims(model, s) for s in sites}
    coords = {}
    for s in sites:
        for name, size in zip(dims[s], draws[s].shape[1:]):
            coords[name] = np.arange(size)
    extra = {}
    if predictive is not None:
        dims["prob"] = ["pixel"]
        dims["pixel_row"] = dims["pixel_col"] = ["pixel"]
        coords["pixel"] = labels
        extra = dict(posterior_predictive={"prob": predictive[None]},
                     constant_data={"pixel_row": rc[:, 0], "pixel_col": rc[:, 1]})
    attrs = {"created_by": f"cosmiq_pyro {__version__}",
             "guide": "AutoNormal" if isinstance(guide, AutoNormal) else type(guide).__name__,
             "prior": repr(model.prior), "seed": seed}
    return az.from_dict(posterior=group(draws), prior=group(prior), coords=coords, dims=dims,
                        attrs=attrs, **extra)


def posterior_table(fit_or_guide, model=None) -> pd.DataFrame:
    """Per-layer summary of the mean-field weight posterior ``q(w) = prod_i N(mu_i, sigma_i^2)``.

    Parameters
    ----------
    fit_or_guide : FitResult or pyro.infer.autoguide.AutoNormal
        A fitted VI model (`fit_svi`, `load`), or its guide (then ``model`` is required).
    model : UNet2SigmoidVI, optional
        The model of ``fit_or_guide`` when a guide is given.

    Returns
    -------
    pandas.DataFrame
        One row per Bayesian layer (weight and bias together), in network order, indexed by the
        layer's module path, with columns

        * ``kind``: layer type and kernel size;
        * ``n_weights``: number of weights (incl. biases);
        * ``mean_abs_mu``: mean of ``|mu_i|``;
        * ``median_sigma``: median of ``sigma_i``;
        * ``prior_sd``: the prior's standard deviation ``sigma_p`` (its mean over the layer);
        * ``frac_switched_off``: fraction of weights with ``|mu_i| / sigma_i < 1``, i.e. whose
          posterior does not exclude zero at one sigma ("switched off" by the posterior);
        * ``kl_nats``: ``KL(q || p)`` of the layer, summed over its weights in closed form:

          .. math:: \\mathrm{KL}\\left(\\mathcal N(\\mu, \\sigma^2) \\,\\|\\, \\mathcal N(m, \\sigma_p^2)\\right)
                    = \\log\\frac{\\sigma_p}{\\sigma} + \\frac{\\sigma^2 + (\\mu - m)^2}{2 \\sigma_p^2}
                    - \\frac12 .

        The total KL of the network, ``table.kl_nats.sum()``, is the quantity ``fit_svi``
        weights by ``kl_beta / N_train`` in its loss.
    """
    model, guide = _resolve(fit_or_guide, model)
    locs, scales = guide_locs(guide, model.weight_sites), guide_scales(guide, model.weight_sites)
    rows = {}
    with torch.no_grad():
        for site in model.weight_sites:
            layer, module = _layer_of(model, site)
            mu = locs[site].double().cpu().flatten()
            sigma = scales[site].double().cpu().flatten()
            prior = model.prior_distribution(site)
            prior_loc, prior_scale = prior.loc.double().cpu().flatten(), prior.scale.double().cpu().flatten()
            prior_sd = float(prior_scale.mean())
            kl = kl_divergence(Normal(mu, sigma), Normal(prior_loc, prior_scale))
            acc = rows.setdefault(layer, {"kind": _kind(module), "mu": [], "sigma": [], "kl": 0.0,
                                          "prior_sd": prior_sd})
            acc["mu"].append(mu)
            acc["sigma"].append(sigma)
            acc["kl"] += float(kl.sum())
    records = []
    for layer, acc in rows.items():
        mu, sigma = torch.cat(acc["mu"]).numpy(), torch.cat(acc["sigma"]).numpy()
        records.append({
            "layer": layer,
            "kind": acc["kind"],
            "n_weights": int(mu.size),
            "mean_abs_mu": float(np.mean(np.abs(mu))),
            "median_sigma": float(np.median(sigma)),
            "prior_sd": acc["prior_sd"],
            "frac_switched_off": float(np.mean(np.abs(mu) < sigma)),
            "kl_nats": acc["kl"],
        })
    return pd.DataFrame.from_records(records).set_index("layer")


def _kind(module: nn.Module) -> str:
    ky, kx = module.kernel_size
    return f"{type(module).__name__.removeprefix('Pyro')} {ky}x{kx}"
