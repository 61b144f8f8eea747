"""Post-hoc temperature scaling of CR logits (Guo et al. 2017, "On calibration of modern neural
networks", ICML, sec. 4.2).

One scalar, the temperature ``tau > 0``, divides every logit before the sigmoid (``T`` is only
ever the number of posterior draws in this package).  For a model with ``S`` posterior draws per
pixel (the Bayesian twin; ``S = 1`` for the deterministic twin) the tempered
predictive probability of pixel ``i`` is

.. math:: \\bar p_i(\\tau) = \\frac{1}{S} \\sum_{s=1}^{S} \\sigma(z_{si} / \\tau),

and ``tau`` minimises the negative log-likelihood of the validation labels ``y_i``:

.. math:: \\mathrm{NLL}(\\tau) = -\\frac{1}{n} \\sum_i \\left[ y_i \\log \\bar p_i(\\tau)
          + (1 - y_i) \\log(1 - \\bar p_i(\\tau)) \\right].

``tau > 1`` softens over-confident probabilities, ``tau < 1`` sharpens under-confident ones; the
ranking of pixels (ROC, TPR at fixed FPR) is unchanged for ``S = 1``.

Why the per-draw logits (and not the logit of the MC-mean probability) for the Bayesian model:
tempering each draw keeps every draw a Bernoulli predictive, so ``predict``'s split
``entropy = aleatoric + epistemic`` stays the exact decomposition of the tempered predictive
(the epistemic part is a mutual information, >= 0 by Jensen's inequality).  Tempering only the
mean's logit would change the total entropy but not the per-draw (aleatoric) entropies, and
their difference would no longer be a mutual information.  It also costs nothing at prediction
time: `predict` divides each draw's logits by ``tau`` before its running sums.  For ``S = 1``
both choices are the same, standard temperature scaling.

`fit_temperature` and `tempered_nll` are plain numpy / scipy on arrays.  `validation_logits`
collects a fitted model's logits on labelled frames (the same fused eval-mode passes as
`cosmiq_pyro.predict`), and `calibrate` fits and stores the temperature of a `FitResult`; the fit
functions call it on the validation split at the end of training.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from torch.utils.data import DataLoader

from ..data.datasets import as_dataset
from ..models.bayesian import draw_weights
from ..models.fused import fuse_weights, fused_logits
from ..models.registry import resolve
from ..utils.checks import check_float, check_int, check_seed
from ..utils.torchtools import eval_mode, module_device, seeded

__all__ = ["TEMPERATURE_BOUNDS", "tempered_nll", "fit_temperature", "check_temperature",
           "validation_logits", "calibrate"]

#: Search interval of the fitted temperature.  A fit that ends on an edge is reported by
#: `fit_temperature` (the model is far from calibrated, or the validation set is degenerate).
TEMPERATURE_BOUNDS = (1e-2, 1e2)


def _as_arrays(logits, labels, ignore=None):
    """``logits`` as float64 (S, n) and ``labels`` as float64 (n,) over the valid pixels."""
    z = _numpy(logits, "logits").astype(np.float64)
    y = _numpy(labels, "labels")
    if z.shape == y.shape:
        z = z[None]
    elif z.shape[1:] != y.shape:
        raise ValueError(f"logits must have the labels' shape {y.shape} or (S, *{y.shape}), "
                         f"got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 or bool")
    keep = np.ones(y.shape, bool)
    if ignore is not None:
        ignore = _numpy(ignore, "ignore").astype(bool)
        if ignore.shape != y.shape:
            raise ValueError(f"ignore has shape {ignore.shape}, labels have {y.shape}")
        keep = ~ignore
    z = z[:, keep]  # (S, n)
    y = y[keep].astype(np.float64)  # (n,)
    if y.size == 0:
        raise ValueError("no valid pixels to fit a temperature on")
    return z, y


def _numpy(x, name):
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """NLL(tau) for logits (S, n) and labels (n,), in float64 without forming ``log(1 - p)``.

    ``log sigma(u) = -softplus(-u)`` and ``log(1 - sigma(u)) = -softplus(u)``; the mean over
    draws is a log-sum-exp.
    """
    u = z / temperature
    log_p = logsumexp(-np.logaddexp(0.0, -u), axis=0) - math.log(len(z))  # (n,)
    log_q = logsumexp(-np.logaddexp(0.0, u), axis=0) - math.log(len(z))
    return float(-(y * log_p + (1.0 - y) * log_q).mean())


def tempered_nll(logits, labels, temperature: float = 1.0, *, ignore=None) -> float:
    """Mean negative log-likelihood (nats per pixel) of ``labels`` under ``logits / temperature``.

    Parameters
    ----------
    logits : array_like, shape (n...) or (S, n...)
        Pre-sigmoid CR scores; a leading axis holds ``S`` posterior draws, whose tempered
        probabilities are averaged (module docstring).
    labels : array_like of bool or 0/1, shape (n...)
    temperature : float
        ``tau > 0``.
    ignore : array_like of bool, shape (n...), optional
        Pixels left out.

    Returns
    -------
    float
        ``NLL(tau)`` of the module docstring.
    """
    check_temperature(temperature)
    z, y = _as_arrays(logits, labels, ignore)
    return _nll(z, y, float(temperature))


def fit_temperature(logits, labels, *, ignore=None, bounds=TEMPERATURE_BOUNDS, xatol: float = 1e-4) -> float:
    """The temperature ``tau`` that minimises the validation NLL of ``sigmoid(logits / tau)``.

    .. math:: \\hat\\tau = \\arg\\min_{\\tau > 0} \\mathrm{NLL}(\\tau)

    (module docstring).  For one draw (``S = 1``) the NLL is convex in ``1 / tau`` (a one-
    parameter logistic regression without intercept), so the minimum is unique; the search is
    Brent's bounded method on ``log tau`` (`scipy.optimize.minimize_scalar`).

    Parameters
    ----------
    logits : array_like, shape (n...) or (S, n...)
        Validation logits, with ``S`` posterior draws on a leading axis for a Bayesian model.
    labels : array_like of bool or 0/1, shape (n...)
        Validation truth masks.
    ignore : array_like of bool, shape (n...), optional
        Pixels left out (bad pixels, saturation).
    bounds : (float, float)
        Search interval for ``tau``.
    xatol : float
        Absolute tolerance on ``log tau``.

    Returns
    -------
    float
        ``tau``.

    Raises
    ------
    ValueError
        Labels of one class only (any ``tau`` large or small fits them best), non-finite
        logits, mismatched shapes, or a minimum on the edge of ``bounds``.
    """
    z, y = _as_arrays(logits, labels, ignore)
    if y.min() == y.max():
        raise ValueError("labels hold one class only; a temperature needs both CR and non-CR pixels")
    lo, hi = (float(b) for b in bounds)
    if not (0 < lo < 1 < hi):
        raise ValueError(f"bounds must satisfy 0 < low < 1 < high, got {bounds!r}")
    res = minimize_scalar(lambda log_t: _nll(z, y, math.exp(log_t)),
                          bounds=(math.log(lo), math.log(hi)), method="bounded",
                          options={"xatol": xatol})
    temperature = math.exp(res.x)
    if abs(res.x - math.log(lo)) < 10 * xatol or abs(res.x - math.log(hi)) < 10 * xatol:
        raise ValueError(f"the fitted temperature {temperature:.4g} lies on the edge of bounds {bounds}; "
                         "are the logits and labels from the same pixels?")
    return temperature


def check_temperature(temperature) -> float:
    """``temperature`` as a float, or a ValueError unless it is a finite number > 0."""
    return check_float(temperature, "temperature", positive=True)


def validation_logits(model, data, *, draws: int = 8, seed: int = 0, max_pixels: int = 2_000_000,
                      guide=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a fitted model on the valid pixels of labelled frames, for `fit_temperature`.

    Parameters
    ----------
    model : FitResult, UNet2Sigmoid or UNet2SigmoidVI
        With a guide (Bayesian model) ``draws`` posterior weight draws are made once with
        ``seed``; the deterministic twin gives one row.
    data : Dataset or tuple of arrays
        ``(image, mask, ignore)`` items (`cosmiq_pyro.data.as_dataset`); frame sides must be even.
    draws : int
        Posterior draws ``S``.
    seed : int
        Seed of the draws and of the pixel subsample.
    max_pixels : int
        At most this many valid pixels, a uniform random subset when there are more (the NLL is
        a mean over pixels, so a uniform subset estimates it without bias).
    guide : AutoNormal, optional
        The guide of a bare `UNet2SigmoidVI`.

    Returns
    -------
    logits : numpy.ndarray, float32, shape (S, n)
    labels : numpy.ndarray, bool, shape (n,)
    """
    draws = check_int(draws, "draws", 1)
    seed = check_seed(seed)
    max_pixels = check_int(max_pixels, "max_pixels", 1)
    net, guide = resolve(model, guide)
    device = module_device(net)
    dataset = as_dataset(data, name="data")
    chunks, labels = [], []
    with eval_mode(net), torch.inference_mode():
        if guide is None:
            passes = [fuse_weights(net)]
        else:
            with seeded(seed, device):
                weights = draw_weights(net, guide, draws)  # {site: (S, *shape)}
            passes = [fuse_weights(net, {site: w[t:t + 1] for site, w in weights.items()}) for t in range(draws)]
        for x, y, ignore, *_ in DataLoader(dataset, batch_size=1):  # weights (if any) unused
            if x.shape[-1] % 2 or x.shape[-2] % 2:
                raise ValueError(f"frames must have even sides for the U-Net's pooling, got {tuple(x.shape[-2:])}")
            x = x.to(device)
            valid = (ignore[0, 0] < 0.5).numpy()  # (H, W)
            z = torch.cat([fused_logits(fw, x)[0, :, 0] for fw in passes])  # (S, H, W)
            chunks.append(z.float().cpu().numpy()[:, valid])
            labels.append(y[0, 0].numpy()[valid] > 0.5)
    logits, truth = np.concatenate(chunks, axis=1), np.concatenate(labels)
    if truth.size > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(truth.size, max_pixels, replace=False))
        logits, truth = logits[:, keep], truth[keep]
    return logits, truth


def calibrate(result, data, *, draws: int = 8, seed: int = 0, max_pixels: int = 2_000_000) -> float:
    """Fit the temperature of ``result`` on labelled frames and store it in ``result.temperature``.

    ``tau = fit_temperature(*validation_logits(result, data, ...))`` (module docstring); `predict`,
    the deepCR facade and the CLI then divide every logit of this model by ``tau``, and a
    checkpoint written from ``result`` carries it.

    Parameters
    ----------
    result : FitResult
        A fitted model (either twin); its previous temperature is not used.
    data : Dataset or tuple of arrays
        Validation frames (not the training frames).
    draws, seed, max_pixels
        As for `validation_logits`.

    Returns
    -------
    float
        The temperature.
    """
    if not hasattr(result, "temperature"):
        raise TypeError(f"calibrate needs a FitResult (it stores the temperature), got {type(result).__name__}")
    logits, labels = validation_logits(result, data, draws=draws, seed=seed, max_pixels=max_pixels)
    result.temperature = fit_temperature(logits, labels)
    return result.temperature
