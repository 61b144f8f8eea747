"""The sampling-free predictive ("moments"): CR probability, aleatoric and epistemic maps of the
Bayesian twin from one moment-propagation pass instead of ``T`` weight draws.

`models.moment_net` carries the mean and variance of every activation through the net under the
mean-field posterior, giving each pixel's logit as ``z ~ N(m, v)``.  With the model's temperature
``T_c``, its prior-shift correction ``Delta`` (`inference.prior_shift`; 0 for a model trained at
the real CR rate) and its variance scale ``c`` (below), ``z -> N(m / T_c + Delta, c v / T_c^2)`` and

.. math::
    p = E[\\sigma(z)], \\qquad A = E[H(\\sigma(z))], \\qquad
    E = H(p) - A \\;(\\ge 0 \\text{ by Jensen}), \\qquad H(p) = A + E ,

both expectations by Gauss-Hermite quadrature (`models.gaussian_moments.sigmoid_moments`), the
same quantities `inference.predictive` estimates from ``T`` draws.

Variance scale
--------------
Propagation treats the activations of a layer as independent; under the posterior they are not
(neighbouring pixels share every weight), and on the shipped ACS-WFC-VI the propagated logit
variance is about half of Monte Carlo's.  One scalar ``c`` multiplying the logit variance
absorbs most of it.  Next to very bright pixels (star cores near saturation) the opposite
happens: the propagated variance is up to 20x Monte Carlo's (activations that cancel under the
posterior add up here), so the calibration saturates at ``v_max``:

.. math:: v \\to \\frac{c\\,v}{1 + c\\,v / v_{\\max}} .

Both are fitted against T-draw MC on the model's validation frames
(`inference.moments_calibration`).  It travels with the model as the checkpoint section ``"moments"``
(``{"variance_scale": c, "pool": ..., ...}``, `moment_settings`); a model without the section
gets ``c = 1`` (the uncalibrated propagation).

Speed
-----
The pass runs channels-last; ``torch.compile`` fuses its elementwise work when a compiler is
present (`compiled`), and the eager code computes the same numbers when it is not (the tests
compare the two).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..models.gaussian_moments import sigmoid_moments
from ..models.linear_moments import linear_logits, linear_weights
from ..models.moment_net import POOL_RULES, MomentWeights, moment_logits, moment_weights
from ..models.registry import resolve
from ..utils.checks import check_float, check_int
from .prior_shift import logit_shift
from .temperature import check_temperature

__all__ = ["CPU_TILE_PX", "MomentSettings", "MomentPass", "moment_settings", "moment_predictive"]

#: Core tile side (px) the moment pass runs fastest at on a CPU: its ~10 live full-resolution
#: 32-64-channel maps then stay in cache.  Per core pixel, against one twin pass on predict's
#: 384 px tiles: 8.0x with 384 px tiles, 5.5x with 192, 5.2x with 128 (margins included;
#: benchmarks/bench_moments.py, docs/predictive_methods.md).
CPU_TILE_PX = 128
#: Gauss-Hermite nodes at the output (16: p and the entropies within 1e-6 of 64 nodes on the
#: reference frames; docs/predictive_methods.md).
GH_NODES = 16
SECTION = "moments"
#: How the moments are carried through the net (`MomentSettings.propagation`).
PROPAGATIONS = ("full", "linear")


@dataclass(frozen=True)
class MomentSettings:
    """How a model's moment pass runs (stored as the checkpoint section ``"moments"``).

    Attributes
    ----------
    variance_scale : float
        ``c`` multiplying the propagated logit variance (module docstring), > 0.
    pool : {"argmax", "clark"}
        Max-pool rule (`models.moment_net.POOL_RULES`).
    nodes : int
        Gauss-Hermite nodes for ``E[sigma(z)]`` and ``E[H(sigma(z))]``.
    variance_cap : float or None
        ``v_max`` of the saturating calibration ``v -> c v / (1 + c v / v_max)`` (module
        docstring); None: ``v -> c v``.
    propagation : {"full", "linear"}
        ``"full"``: the Gaussian moments of every ReLU and max-pool (`models.moment_net`);
        ``"linear"``: the linearised pass (`models.linear_moments`: the posterior-mean twin
        carries the means, the variances go through each ReLU times its derivative at the mean).
    variance_dtype : {"float32", "bfloat16"}
        Dtype of the linearised pass's variance stream (bfloat16: about half the time of its
        convolutions where the CPU has bfloat16 dot products, variances within 1 %).
    """

    def calibrate(self, v: torch.Tensor) -> torch.Tensor:
        """The calibrated logit variance of the propagated (tempered) ``v``."""
        v = v * self.variance_scale
        return v if self.variance_cap is None else v / (1.0 + v / self.variance_cap)

    variance_scale: float = 1.0
    pool: str = "argmax"
    nodes: int = GH_NODES
    variance_cap: float | None = None
    propagation: str = "full"
    variance_dtype: str = "float32"

    def __post_init__(self):
        if self.propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {self.propagation!r}")
        if self.variance_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"variance_dtype must be 'float32' or 'bfloat16', got {self.variance_dtype!r}")
        check_float(self.variance_scale, "variance_scale", positive=True)
        if self.variance_cap is not None:
            check_float(self.variance_cap, "variance_cap", positive=True)
        if self.pool not in POOL_RULES:
            raise ValueError(f"pool must be one of {sorted(POOL_RULES)}, got {self.pool!r}")
        check_int(self.nodes, "nodes", 2)

    def to_section(self) -> dict:
        return {"variance_scale": float(self.variance_scale), "pool": self.pool, "nodes": int(self.nodes),
                "variance_cap": None if self.variance_cap is None else float(self.variance_cap),
                "propagation": self.propagation, "variance_dtype": self.variance_dtype}


def moment_settings(model) -> MomentSettings:
    """The `MomentSettings` a model carries (its ``"moments"`` checkpoint section), else defaults."""
    sections = getattr(model, "sections", None) or {}
    section = sections.get(SECTION)
    if section is None:
        return MomentSettings()
    if not isinstance(section, dict):
        raise ValueError(f"the model's {SECTION!r} section must be a dict, got {type(section).__name__}")
    return MomentSettings(**{k: section[k] for k in ("variance_scale", "pool", "nodes", "variance_cap",
                                                     "propagation", "variance_dtype") if k in section})


class MomentPass:
    """A Bayesian model prepared for moment passes (weights folded once, reused for every tile).

    Parameters
    ----------
    model : FitResult or UNet2SigmoidVI
        The Bayesian twin with its mean-field guide (given here or inside the `FitResult`).
    guide : optional
        The guide, when ``model`` is a bare `UNet2SigmoidVI`.
    temperature : float, optional
        Divide the logits by this (default: the `FitResult`'s, else 1).  The model's prior-shift
        correction (`inference.prior_shift.logit_shift`) is then added to the logit mean.
    settings : MomentSettings, optional
        Default: the model's own (`moment_settings`).
    device : torch.device or str, optional
        Where the pass runs (default CPU).
    compile : bool
        Run the pass through ``torch.compile`` (falls back to the eager code, with a warning,
        when compiling fails, e.g. with no C compiler); the numbers agree to float rounding.
    """

    def __init__(self, model, guide=None, *, temperature: float | None = None,
                 settings: MomentSettings | None = None, device=None, compile: bool = False):
        self.temperature = check_temperature(getattr(model, "temperature", 1.0) if temperature is None else temperature)
        self.settings = moment_settings(model) if settings is None else settings
        self.shift = logit_shift(model)
        net, guide = resolve(model, guide)
        if guide is None:
            raise ValueError("the moment pass needs a Bayesian model (UNet2SigmoidVI with its guide), "
                             "got a deterministic net")
        self.device = torch.device("cpu" if device is None else device)
        fmt = torch.channels_last if self.device.type == "cpu" else None
        if self.settings.propagation == "linear":
            self.weights = linear_weights(net, guide, channels_last=self.device.type == "cpu",
                                          var_dtype=getattr(torch, self.settings.variance_dtype)).to(self.device)
        else:
            self.weights: MomentWeights = moment_weights(net, guide).to(self.device, torch.float32, fmt)
        self.bottleneck = None  # the linearised pass's last bottleneck (the novelty features)
        self._compiled = None
        self.compile = bool(compile)

    def logit_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tempered (and prior-shifted), variance-scaled logit mean and variance, each (B, 1, H, W), of ``x``
        (B, 1, H, W) in electrons, ``H`` and ``W`` even."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"x must be (B, 1, H, W) with H and W even, got shape {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            m, v = self._run(x)
        t = self.temperature
        return m / t + self.shift, self.settings.calibrate(v / (t * t))

    def _run(self, x):
        if self.settings.propagation == "linear":
            m, v, self.bottleneck = linear_logits(self.weights, x, return_bottleneck=True)
            return m, v
        if self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(moment_logits, dynamic=True)
            try:
                return self._compiled(self.weights, x, pool=self.settings.pool)
            except Exception as err:  # no compiler, unsupported backend: same numbers, eagerly
                warnings.warn(f"torch.compile of the moment pass failed ({type(err).__name__}: {err}); "
                              "running it eagerly", RuntimeWarning, stacklevel=3)
                self.compile = False
        return moment_logits(self.weights, x, pool=self.settings.pool)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``prob``, ``aleatoric``, ``epistemic`` (B, 1, H, W) float32 of ``x`` (B, 1, H, W).

        ``entropy = aleatoric + epistemic`` (the binary entropy of ``prob``, nats) and
        ``epistemic >= 0``; computed in float64 from the logit moments.
        """
        m, v = self.logit_moments(x)
        prob, alea = sigmoid_moments(m.double(), v.double(), self.settings.nodes)
        entropy = _binary_entropy(prob)
        epistemic = (entropy - alea).clamp_min(0.0)
        aleatoric = entropy - epistemic  # exact split
        return prob.float(), aleatoric.float(), epistemic.float()


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """``-p log p - (1 - p) log(1 - p)`` (nats), 0 at 0 and 1."""
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))


def moment_predictive(model, x: torch.Tensor, *, guide=None, temperature: float | None = None,
                      settings: MomentSettings | None = None, compile: bool = False):
    """One-call form of `MomentPass`: ``(prob, aleatoric, epistemic)``, each (B, 1, H, W), of the
    image batch ``x`` (B, 1, H, W, electrons, ``H`` and ``W`` even), untiled.

    For images larger than a cache-sized tile, build one `MomentPass` and call it per tile with a
    `utils.tiling.tile_margin` overlap (the moment pass has the net's graph, so its receptive field).
    """
    device = x.device if isinstance(x, torch.Tensor) else None
    return MomentPass(model, guide, temperature=temperature, settings=settings, device=device,
                      compile=compile)(x)

