"""Posterior weight draws for the Monte Carlo predictive, made in chunks so memory does not grow with T.

The ``T`` draws ``w_1..w_T ~ q(w)`` are made block by block with `pyro.infer.Predictive`
(`models.bayesian.draw_weights`): block ``b`` holds draws ``[b B, (b + 1) B)``
(``B = DRAW_BLOCK``) and is made from its own seed -- ``seed`` itself for block 0, a seed
derived from ``(seed, b)`` by `numpy.random.SeedSequence` for ``b > 0`` -- so the draws depend
only on ``seed`` and ``T``, not on how many are held at once (the ``chunk`` of `weight_chunks`).
With ``T <= B`` they are exactly ``draw_weights(net, guide, T, seed=seed)``.  Peak memory is that
of ``max(chunk, B)`` draws, whatever ``T``.

Variance-reduced draws (antithetic pairs, scrambled Sobol points) were measured against these
(issue 23, docs/predictive_methods.md): both estimate ``p`` better at the same ``T`` but not the
epistemic term, and the moment pass beats them on ``p``; they are not offered.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..models.bayesian import draw_weights
from ..utils.checks import check_int, check_seed

__all__ = ["DRAW_BLOCK", "MAX_T", "check_draws", "block_seed", "weight_chunks"]

#: Draws per seeded block (for the shipped 101,473-weight model, 13 MB of float32 weights).
DRAW_BLOCK = 32
#: Largest number of draws accepted.  The Monte Carlo standard error of a probability is at most
#: ``0.5 / sqrt(T)``: 0.002 at this T, far below any use of the maps; a larger T is a typing
#: error (``-T 100000000``) and is refused before any work.
MAX_T = 65536


def check_draws(T) -> int:
    """``T`` as an int in ``[1, MAX_T]``; TypeError / ValueError otherwise."""
    T = check_int(T, "T", minimum=1)
    if T > MAX_T:
        raise ValueError(f"T must be at most {MAX_T} posterior draws (Monte Carlo error <= 0.5/sqrt(T) = "
                         f"{0.5 / MAX_T ** 0.5:.1g} there), got {T}")
    return T


def block_seed(seed: int, block: int) -> int:
    """Seed of draw block ``block``: ``seed`` itself for block 0, else a 63-bit seed derived
    from ``(seed, block)`` by `numpy.random.SeedSequence` (independent streams)."""
    if block == 0:
        return seed
    return int(np.random.SeedSequence([seed, block]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def weight_chunks(net, guide, T: int, seed: int, chunk: int = DRAW_BLOCK,
                  device=None) -> Iterator[dict[str, torch.Tensor]]:
    """The ``T`` posterior draws of every weight site, ``chunk`` draws at a time.

    Parameters
    ----------
    net : UNet2SigmoidVI
        Its ``weight_sites`` name the sites.
    guide
        The posterior (any guide `models.bayesian.draw_weights` takes).
    T, seed : int
        Number of draws (`check_draws`) and their seed: the same ``(T, seed)`` gives the same
        draws whatever ``chunk``.
    chunk : int
        Draws per yielded dict (the last may be smaller).
    device : torch.device, optional
        Where the draws go (default: the net's device, where they are made).

    Yields
    ------
    dict
        ``{site: (k, *weight_shape)}``, ``k <= chunk``, in draw order.
    """
    T, seed, chunk = check_draws(T), check_seed(seed), check_int(chunk, "chunk", minimum=1)
    held: list[dict] = []
    count = 0
    for b in range(-(-T // DRAW_BLOCK)):
        k = min(DRAW_BLOCK, T - b * DRAW_BLOCK)
        draws = draw_weights(net, guide, min(T, DRAW_BLOCK), seed=block_seed(seed, b))
        held.append({s: (w[:k] if device is None else w[:k].to(device)) for s, w in draws.items()})
        count += k
        while count >= chunk:
            out, held, count = _take(held, chunk)
            yield out
    if count:
        yield _take(held, count)[0]


def _take(held: list[dict], k: int):
    """The first ``k`` draws of the held blocks, and what is left (blocks, count)."""
    joined = {site: torch.cat([b[site] for b in held]) if len(held) > 1 else held[0][site] for site in held[0]}
    total = len(next(iter(joined.values())))
    out = {site: w[:k] for site, w in joined.items()}
    rest = [{site: w[k:] for site, w in joined.items()}] if total > k else []
    return out, rest, total - k
