"""Posterior weight draws for the Monte Carlo predictive, made in chunks so memory does not grow with T.

The ``T`` draws ``w_1..w_T ~ q(w)`` are made block by block: block ``b`` holds draws
``[b B, (b + 1) B)`` (``B = DRAW_BLOCK``) and is made from its own seed, so the draws do not
depend on how many are held at once (the ``chunk`` of `weight_chunks`), only on ``seed``,
``T`` and the scheme.  Peak memory is that of ``max(chunk, B)`` draws, whatever ``T``.

Schemes (the predictive methods ``"mc"``, ``"mc-antithetic"``, ``"mc-sobol"`` of `predictive`):

* ``"iid"`` -- independent draws from the guide through `pyro.infer.Predictive`
  (`models.bayesian.draw_weights`).  Block 0 is drawn with ``seed`` itself, block ``b > 0``
  with a seed derived from ``(seed, b)`` (`numpy.random.SeedSequence`); with ``T <= B`` the
  draws are exactly ``draw_weights(net, guide, T, seed=seed)``.
* ``"antithetic"`` -- for a mean-field Normal guide ``q = prod_i N(mu_i, s_i^2)``, pairs
  ``w = mu + s * eps`` and ``w' = mu - s * eps`` with ``eps ~ N(0, I)``: each draw is still
  distributed as ``q``, and the odd part of the integrand cancels within a pair
  (``T`` even).
* ``"sobol"`` -- ``eps_i = Phi^{-1}(u_i)`` with ``u`` the points of scrambled Sobol sequences
  (`torch.quasirandom.SobolEngine`, Owen scrambling): every coordinate's ``T`` values are
  stratified (one per interval ``[j/T, (j+1)/T)`` when ``T`` is a power of 2).  The ~10^5
  weights exceed one engine's 21201 dimensions, so consecutive groups of coordinates get
  independently scrambled engines (Owen's "padding").

Antithetic and Sobol draws are made on the CPU (the same numbers on every device) and moved.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from pyro.infer.autoguide import AutoNormal
from torch.quasirandom import SobolEngine

from ..models.bayesian import draw_weights
from ..models.guides import guide_locs, guide_scales
from ..utils.checks import check_int, check_seed

__all__ = ["SCHEMES", "DRAW_BLOCK", "MAX_T", "check_draws", "block_seed", "weight_chunks"]

#: The draw schemes `weight_chunks` knows.
SCHEMES = ("iid", "antithetic", "sobol")
#: Draws per seeded block (for the shipped 101,473-weight model, 13 MB of float32 weights).
DRAW_BLOCK = 32
#: Largest number of draws accepted.  The Monte Carlo standard error of a probability is at most
#: ``0.5 / sqrt(T)``: 0.002 at this T, far below any use of the maps; a larger T is a typing
#: error (``-T 100000000``) and is refused before any work.
MAX_T = 65536


def check_draws(T, scheme: str = "iid") -> int:
    """``T`` as an int in ``[1, MAX_T]`` (even for the antithetic scheme); ValueError/TypeError otherwise."""
    T = check_int(T, "T", minimum=1)
    if T > MAX_T:
        raise ValueError(f"T must be at most {MAX_T} posterior draws (Monte Carlo error <= 0.5/sqrt(T) = "
                         f"{0.5 / MAX_T ** 0.5:.1g} there), got {T}")
    if scheme == "antithetic" and T % 2:
        raise ValueError(f"T must be even for antithetic draws (pairs w, w'), got {T}")
    return T


def block_seed(seed: int, block: int) -> int:
    """Seed of draw block ``block``: ``seed`` itself for block 0, else a 63-bit seed derived
    from ``(seed, block)`` by `numpy.random.SeedSequence` (independent streams)."""
    if block == 0:
        return seed
    return int(np.random.SeedSequence([seed, block]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def weight_chunks(net, guide, T: int, seed: int, scheme: str = "iid", chunk: int = DRAW_BLOCK,
                  device=None) -> Iterator[dict[str, torch.Tensor]]:
    """The ``T`` posterior draws of every weight site, ``chunk`` draws at a time.

    Parameters
    ----------
    net : UNet2SigmoidVI
        Its ``weight_sites`` name the sites.
    guide : AutoNormal
        The posterior (any guide for ``"iid"``; the mean-field `AutoNormal` for the others).
    T, seed : int
        Number of draws (`check_draws`) and their seed: the same ``(T, seed, scheme)`` gives the
        same draws whatever ``chunk``.
    scheme : {"iid", "antithetic", "sobol"}
    chunk : int
        Draws per yielded dict (the last may be smaller).
    device : torch.device, optional
        Where the draws go (default: the net's device).

    Yields
    ------
    dict
        ``{site: (k, *weight_shape)}``, ``k <= chunk``, in draw order.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    T, seed, chunk = check_draws(T, scheme), check_seed(seed), check_int(chunk, "chunk", minimum=1)
    held: list[dict] = []
    count = 0
    for block in _blocks(net, guide, T, seed, scheme, device):
        held.append(block)
        count += _length(block)
        while count >= chunk:
            out, held, count = _take(held, chunk)
            yield out
    if count:
        yield _take(held, count)[0]


def _length(draws: dict) -> int:
    return len(next(iter(draws.values())))


def _take(held: list[dict], k: int):
    """The first ``k`` draws of the held blocks, and what is left."""
    joined = {site: torch.cat([b[site] for b in held]) if len(held) > 1 else held[0][site] for site in held[0]}
    total = _length(joined)
    out = {site: w[:k] for site, w in joined.items()}
    rest = [{site: w[k:] for site, w in joined.items()}] if total > k else []
    return out, rest, total - k


def _blocks(net, guide, T: int, seed: int, scheme: str, device) -> Iterator[dict[str, torch.Tensor]]:
    """Blocks of `DRAW_BLOCK` draws (the last one shorter), each made from its own seed."""
    sites = list(net.weight_sites)
    if scheme != "iid":
        if not isinstance(guide, AutoNormal):
            raise ValueError(f"{scheme} draws need the mean-field Normal guide (AutoNormal, from fit_svi or "
                             f"load), got {type(guide).__name__}; use the iid Monte Carlo method 'mc'")
        locs, scales = guide_locs(guide, sites), guide_scales(guide, sites)
        target = device if device is not None else next(iter(locs.values())).device
        sizes = [locs[s].numel() for s in sites]
        engines = _sobol_engines(sum(sizes), seed) if scheme == "sobol" else None
    n_blocks = -(-T // DRAW_BLOCK)
    for b in range(n_blocks):
        k = min(DRAW_BLOCK, T - b * DRAW_BLOCK)
        if scheme == "iid":
            draws = draw_weights(net, guide, T if T <= DRAW_BLOCK else DRAW_BLOCK, seed=block_seed(seed, b))
            yield {s: (w[:k] if device is None else w[:k].to(device)) for s, w in draws.items()}
            continue
        if scheme == "antithetic":  # k is even: DRAW_BLOCK and T are
            gen = torch.Generator().manual_seed(block_seed(seed, b))
            half = torch.randn(k // 2, sum(sizes), generator=gen, dtype=torch.float64)
            eps = torch.stack([half, -half], dim=1).reshape(k, -1)  # (k, D): eps_0, -eps_0, eps_1, ...
        else:
            eps = _normal_icdf(torch.cat([e.draw(k, dtype=torch.float64) for e in engines], dim=1))  # (k, D)
        yield _affine(eps, sites, sizes, locs, scales, target)


def _affine(eps: torch.Tensor, sites, sizes, locs, scales, device) -> dict[str, torch.Tensor]:
    """``{site: mu + s * eps}`` from standard-normal ``eps`` (k, D) split over the sites."""
    out = {}
    for site, part in zip(sites, torch.split(eps, sizes, dim=1)):
        mu, s = locs[site], scales[site]
        w = mu.double().cpu() + s.double().cpu() * part.reshape(len(part), *mu.shape)  # (k, *shape)
        out[site] = w.to(device=device, dtype=mu.dtype)
    return out


def _sobol_engines(dimension: int, seed: int) -> list[SobolEngine]:
    """Independently scrambled Sobol engines covering ``dimension`` coordinates."""
    engines, start, group = [], 0, 0
    while start < dimension:
        d = min(SobolEngine.MAXDIM, dimension - start)
        engines.append(SobolEngine(d, scramble=True, seed=block_seed(seed, group + 1) % 2**31))
        start, group = start + d, group + 1
    return engines


def _normal_icdf(u: torch.Tensor) -> torch.Tensor:
    """``Phi^{-1}(u) = sqrt(2) erfinv(2u - 1)``, ``u`` clipped to ``[2^-40, 1 - 2^-40]``."""
    u = u.clamp(2.0 ** -40, 1.0 - 2.0 ** -40)
    return np.sqrt(2.0) * torch.special.erfinv(2.0 * u - 1.0)
