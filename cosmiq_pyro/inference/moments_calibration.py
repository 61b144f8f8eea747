"""Fitting the moment pass's variance calibration ``(c, v_max)`` against Monte Carlo
(`inference.moments`: ``v -> c v / (1 + c v / v_max)``).

The propagated logit variance ignores the correlations between activations that shared weights
create; the two scalars are fitted on validation frames so that the epistemic map matches the
T-draw MC predictive of the same model:

.. math::
    (\\hat c, \\hat v_{\\max}) = \\arg\\min_{(c, v_{\\max}) \\in G} \\sum_{\\text{frames}}
        \\sum_{i\\,\\text{valid}} \\big(E_i^{\\text{moments}}(c, v_{\\max}) - E_i^{\\text{MC}}\\big)^2 ,

over a grid ``G``: ``c`` log-spaced from 1 to 8 (5 % apart), ``v_max`` in `CAP_GRID` (None: no
cap).  The objective is smooth in both.  The MC maps come from
`inference.predictive.predict` with ``T`` draws (the package's reference path), the moment maps
from one `MomentPass` per frame with its logit moments reused for every ``c``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.input_transform import model_input
from ..models.gaussian_moments import sigmoid_moments
from ..utils.checks import check_int
from .moments import MomentPass, MomentSettings
from .predictive import pad_to_grid, predict

__all__ = ["fit_variance_scale", "SCALE_GRID", "CAP_GRID"]

#: Candidate variance scales ``c``: 1 to 8, log-spaced, 5 % apart.
SCALE_GRID = np.exp(np.linspace(0.0, np.log(8.0), 43))
#: Candidate variance caps ``v_max`` (logit units squared); None: no cap.
CAP_GRID = (None, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0)


def fit_variance_scale(model, images, ignores=None, *, T: int = 256, seed: int = 0, pool: str = "argmax",
                       guide=None, grid=SCALE_GRID, caps=CAP_GRID, propagation: str = "full",
                       variance_dtype: str = "float32") -> tuple[MomentSettings, dict]:
    """The `MomentSettings` whose variance calibration best matches T-draw MC on ``images``.

    Parameters
    ----------
    model : FitResult or UNet2SigmoidVI
        The Bayesian model (with ``guide`` when bare); its temperature is used throughout, and
        its input transform (a `FitResult`'s ``input_transform``) on every frame, by both passes.
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
        Candidate scales ``c`` (> 0).
    propagation, variance_dtype : str
        The pass being calibrated (`MomentSettings`).
    caps : sequence of float or None
        Candidate caps ``v_max`` (> 0, or None for none).

    Returns
    -------
    settings : MomentSettings
        With the fitted ``variance_scale`` and ``variance_cap``.
    report : dict
        ``{"grid": [...], "caps": [...], "rms_epistemic": [[...] per cap], "n_frames", "n_pixels",
        "T", "seed"}``: the objective's square root (nats) per candidate.
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
    caps = list(caps)
    kind = {"propagation": propagation, "variance_dtype": variance_dtype}
    candidates = [[MomentSettings(float(c), pool, variance_cap=cap, **kind) for c in grid] for cap in caps]  # checks caps
    moments = MomentPass(model, guide, settings=MomentSettings(variance_scale=1.0, pool=pool, **kind))
    sse = np.zeros((len(caps), grid.size))
    n_pixels = 0
    for image, ignore in zip(images, ignores):
        image = np.asarray(image, dtype=np.float32)
        reference = predict(model, image, guide=guide, T=T, seed=seed, ignore=ignore, progress=False, novelty=False)
        keep = np.ones(image.shape, bool) if ignore is None else ~np.asarray(ignore, bool)
        height, width = image.shape
        x = model_input(image, getattr(model, "input_transform", None))  # the net's units, as predict's
        m, v = moments.logit_moments(torch.from_numpy(pad_to_grid(x))[None, None])
        keep_t = torch.from_numpy(keep)
        m, v = m[0, 0, :height, :width].double()[keep_t], v[0, 0, :height, :width].double()[keep_t]
        target = torch.from_numpy(reference.epistemic[keep]).double()
        for row, settings_row in enumerate(candidates):
            for col, settings in enumerate(settings_row):
                p, alea = sigmoid_moments(m, settings.calibrate(v), settings.nodes)
                entropy = -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))
                sse[row, col] += float(((entropy - alea).clamp_min(0.0) - target).pow(2).sum())
        n_pixels += int(keep.sum())
    rms = np.sqrt(sse / n_pixels)
    if not np.all(np.isfinite(rms)):  # argmin would pick the first NaN
        raise ValueError("the variance-fit objective is not finite for every candidate: "
                         "check the images (finite, in electrons) and the model")
    row, col = np.unravel_index(int(np.argmin(rms)), rms.shape)
    report = {"grid": grid.tolist(), "caps": caps, "rms_epistemic": rms.tolist(), "n_frames": len(images),
              "n_pixels": n_pixels, "T": T, "seed": seed}
    return candidates[row][col], report
