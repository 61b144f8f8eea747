"""Fitting the moment pass's variance scale ``c`` against Monte Carlo (`inference.moments`).

The propagated logit variance ignores the correlations between activations that shared weights
create; one scalar ``c`` multiplying it is fitted on validation frames so that the epistemic map
matches the T-draw MC predictive of the same model:

.. math::
    \\hat c = \\arg\\min_{c \\in G} \\sum_{\\text{frames}} \\sum_{i\\,\\text{valid}}
              \\big(E_i^{\\text{moments}}(c) - E_i^{\\text{MC}}\\big)^2 ,

over a log-spaced grid ``G`` (the objective is smooth and has one minimum in practice; the
grid's step, 2.5 %, is far below the scale's own frame-to-frame scatter).  The MC maps come from
`inference.predictive.predict` with ``T`` draws (the package's reference path), the moment maps
from one `MomentPass` per frame with its logit moments reused for every ``c``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.gaussian_moments import sigmoid_moments
from ..utils.checks import check_int
from .moments import MomentPass, MomentSettings
from .predictive import pad_to_grid, predict

__all__ = ["fit_variance_scale", "SCALE_GRID"]

#: Candidate variance scales: 1 to 8, log-spaced, 2.5 % apart.
SCALE_GRID = np.exp(np.linspace(0.0, np.log(8.0), 85))


def fit_variance_scale(model, images, ignores=None, *, T: int = 256, seed: int = 0, pool: str = "argmax",
                       guide=None, grid=SCALE_GRID) -> tuple[MomentSettings, dict]:
    """The `MomentSettings` whose variance scale best matches T-draw MC on ``images``.

    Parameters
    ----------
    model : FitResult or UNet2SigmoidVI
        The Bayesian model (with ``guide`` when bare); its temperature is used throughout.
    images : sequence of array_like, each (H, W)
        Validation frames in electrons (not the frames the result will be judged on).
    ignores : sequence of bool arrays, optional
        Pixels left out of the objective (bad pixels, saturation).
    T : int
        MC draws of the reference.
    seed : int
        Seed of the MC draws.
    pool : {"argmax", "clark"}
        Max-pool rule of the moment pass.
    grid : array_like
        Candidate scales (> 0).

    Returns
    -------
    settings : MomentSettings
        With the fitted ``variance_scale``.
    report : dict
        ``{"grid": [...], "rms_epistemic": [...], "n_frames": int, "n_pixels": int, "T": T,
        "seed": seed}``: the objective's square root per candidate (nats).
    """
    T = check_int(T, "T", 2)
    images = list(images)
    if not images:
        raise ValueError("images is empty: give at least one validation frame")
    ignores = [None] * len(images) if ignores is None else list(ignores)
    if len(ignores) != len(images):
        raise ValueError(f"ignores has {len(ignores)} entries for {len(images)} images")
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or not grid.size or not np.all(np.isfinite(grid) & (grid > 0)):
        raise ValueError("grid must be a non-empty 1-D array of finite scales > 0")
    base = MomentSettings(variance_scale=1.0, pool=pool)
    moments = MomentPass(model, guide, settings=base)
    sse = np.zeros(grid.size)
    n_pixels = 0
    for image, ignore in zip(images, ignores):
        image = np.asarray(image, dtype=np.float32)
        reference = predict(model, image, guide=guide, T=T, seed=seed, ignore=ignore, progress=False, novelty=False)
        keep = np.ones(image.shape, bool) if ignore is None else ~np.asarray(ignore, bool)
        height, width = image.shape
        m, v = moments.logit_moments(torch.from_numpy(pad_to_grid(image))[None, None])
        m, v = m[0, 0, :height, :width].double(), v[0, 0, :height, :width].double()  # (H, W)
        target = torch.from_numpy(reference.epistemic[keep]).double()
        m, v = m[torch.from_numpy(keep)], v[torch.from_numpy(keep)]
        for k, scale in enumerate(grid):
            p, alea = sigmoid_moments(m, v * float(scale), base.nodes)
            entropy = -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))
            sse[k] += float(((entropy - alea).clamp_min(0.0) - target).pow(2).sum())
        n_pixels += int(keep.sum())
    rms = np.sqrt(sse / n_pixels)
    best = float(grid[int(np.argmin(rms))])
    report = {"grid": grid.tolist(), "rms_epistemic": rms.tolist(), "n_frames": len(images),
              "n_pixels": n_pixels, "T": T, "seed": seed}
    return MomentSettings(variance_scale=best, pool=pool), report
