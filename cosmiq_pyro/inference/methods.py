"""The predictive methods `predict` offers, by name (`METHODS`), and the rule for ``T``.

* ``"mc"`` -- Monte Carlo over ``T`` iid posterior draws (`pyro.infer.Predictive`); the
  reference every other method is measured against.
* ``"moments"`` -- sampling-free: every pixel's logit mean and variance carried through the net
  in one deterministic pass (`inference.moments`).

(Antithetic and scrambled-Sobol draws were measured as Monte Carlo variants and not kept:
`inference.draws`.)

``T`` counts Monte Carlo draws.  ``method=None`` with a ``T`` means ``"mc"`` (whatever
`DEFAULT_METHOD` is: asking for draws asks for Monte Carlo), without one `DEFAULT_METHOD` (with
`DEFAULT_T` draws if that is a Monte Carlo method); a ``T`` given with a sampling-free method is
a ValueError (it would not be used).  A deterministic model makes one pass whatever the method
(``T = 1``, recorded as method ``"deterministic"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .draws import check_draws
from .moments import CPU_TILE_PX, MomentPass

__all__ = ["DEFAULT_METHOD", "DEFAULT_T", "METHODS", "PredictiveMethod", "check_method", "method_draws",
           "run_settings"]

#: Posterior draws of a Monte Carlo method when ``T`` is not given.
DEFAULT_T = 16


@dataclass(frozen=True)
class PredictiveMethod:
    """One way of turning the weight posterior into per-pixel maps.

    Attributes
    ----------
    name : str
        What ``predict(..., method=name)`` and the products' CQMETHOD keyword call it.
    prepare : callable or None
        None for Monte Carlo (``T`` posterior draws, `inference.draws`); a sampling-free method's
        ``prepare(model, guide, temperature, device)`` (``model`` as given to `predict`) returns
        ``tile_maps(x) -> (prob, aleatoric)`` for one model, ``x`` a (1, 1, h, w) float32 tile,
        both maps (h, w) tensors.
    extra_margin : int
        Receptive field (px) the method adds to the network's own (0 for both methods here).
    cpu_tile : int or None
        Largest core tile side (px) on a CPU, where the method runs fastest (None: `predict`'s
        own `CPU_TILE`).
    """

    name: str
    prepare: Callable | None = None
    extra_margin: int = 0
    cpu_tile: int | None = None

    @property
    def sampling(self) -> bool:
        """Whether the method averages ``T`` posterior draws."""
        return self.prepare is None


def _moment_maps(model, guide, temperature, device):
    """`inference.moments.MomentPass` as a sampling-free method: (prob, aleatoric) per tile."""
    moment_pass = MomentPass(model, guide, temperature=temperature, device=device)

    def tile_maps(x):
        prob, aleatoric, _ = moment_pass(x)  # (1, 1, h, w) each
        return prob[0, 0], aleatoric[0, 0]
    return tile_maps


#: The predictive methods by name.
METHODS = {m.name: m for m in (PredictiveMethod("mc"), PredictiveMethod("moments", prepare=_moment_maps,
                                                                    cpu_tile=CPU_TILE_PX))}
#: The method `predict`, the CLI and the products use when none is given.
DEFAULT_METHOD = "mc"


def check_method(method, T=None) -> PredictiveMethod:
    """The `PredictiveMethod` named ``method``; ValueError naming the known ones.

    ``method=None`` means `DEFAULT_METHOD`, except when a number of draws ``T`` is given: then
    ``"mc"`` (asking for ``T`` draws asks for Monte Carlo, whatever the default).
    """
    if method is None:
        method = "mc" if T is not None else DEFAULT_METHOD
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    return METHODS[method]


def method_draws(method: PredictiveMethod, T, bayesian: bool = True) -> int | None:
    """The number of posterior draws ``method`` makes when asked for ``T``.

    Monte Carlo: ``T`` (default `DEFAULT_T`; at most `MAX_T`); sampling-free: None, and a ``T``
    given with it is a ValueError (it would not be used).  A deterministic model (``bayesian``
    False) makes one pass whatever the method and ``T``: 1.
    """
    if not bayesian:
        if T is not None:
            check_draws(T)
        return 1
    if not method.sampling:
        if T is not None:
            raise ValueError(f"T={T!r} counts Monte Carlo draws; method {method.name!r} makes none "
                             "(leave T out, or pass method='mc')")
        return None
    return check_draws(DEFAULT_T if T is None else T)


def run_settings(method, T, bayesian: bool = True) -> tuple[str, int | None]:
    """What ``predict(model, ..., method=method, T=T)`` records: ``(method name, draws)``.

    A Bayesian model: the method's name and `method_draws`; a deterministic one:
    ``("deterministic", 1)`` (one pass, whatever the method).  ValueError as `check_method` and
    `method_draws`.
    """
    spec = check_method(method, T)
    draws = method_draws(spec, T, bayesian)
    return (spec.name if bayesian else "deterministic"), draws
