"""Cost of one SVI training step relative to one deterministic step (batch 16 of 256 x 256).

Run::

    python benchmarks/bench_train.py [--quick]

Two measurements, each interleaved (A B A B ...), ``torch.set_num_threads(2)``:

* through the public API: ``fit_svi`` / ``fit_deterministic`` with ``epochs=1`` on
  ``steps * 16`` frames (setup included, divided by ``steps``);
* the bare step, as `fit._train` runs it: loss (``objective.svi_loss`` -- guide draw, Pyro model,
  scaled ELBO -- or ``fit.masked_bce``), ``backward``, ``Adam.step``.

Target: SVI step / deterministic step <= 1.3.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import THREADS, Row, interleaved  # noqa: E402

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_deterministic, fit_svi  # noqa: E402
from cosmiq_pyro.inference.objective import svi_loss  # noqa: E402
from cosmiq_pyro.models.bayesian import weight_state  # noqa: E402
from cosmiq_pyro.models.guides import make_guide  # noqa: E402
from cosmiq_pyro.inference.fit import masked_bce  # noqa: E402


def make_batch(n: int, side: int, seed: int = 0):
    """Sky 100 e- with Gaussian noise (sd 10) and 1 % CR pixels of 300-2000 e-: (image, mask, ignore)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 10.0, (n, side, side)).astype(np.float32)
    mask = rng.random((n, side, side)) < 0.01
    image[mask] += rng.uniform(300, 2000, int(mask.sum())).astype(np.float32)
    return image, mask, np.zeros_like(mask)


def run(quick: bool = False, log=print) -> list[Row]:
    torch.set_num_threads(THREADS)
    batch, side = (4, 64) if quick else (16, 256)
    steps, repeats = (2, 1) if quick else (2, 2)
    sec = f"training (batch {batch} of {side}x{side})"
    data = make_batch(steps * batch, side)

    log(f"bench_train: public fit_* ({steps} steps per call)")
    cases = {
        "svi": lambda: fit_svi(UNet2SigmoidVI(), data, epochs=1, batch_size=batch, progress=False),
        "det": lambda: fit_deterministic(UNet2Sigmoid(), data, epochs=1, batch_size=batch, progress=False),
    }
    t_fit = interleaved(cases, repeats)

    log("bench_train: bare steps")
    x, y, ignore = (torch.from_numpy(a[:batch, None].astype(np.float32)) for a in data)
    net = UNet2Sigmoid().train()
    det_opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    vi = UNet2SigmoidVI()
    guide = make_guide(vi, weight_state(UNet2Sigmoid(), vi.weight_sites), 1e-3)
    vi.train()
    loss_vi = svi_loss(vi, guide, 1e-6 / batch)
    vi_opt = torch.optim.Adam(list(vi.parameters()) + list(guide.parameters()), lr=1e-3)

    def step(loss_fn, opt):
        def run_step():
            loss = loss_fn()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
        return run_step

    t_step = interleaved({"svi": step(lambda: loss_vi(x, y, ignore), vi_opt),
                          "det": step(lambda: masked_bce(net.logits(x), y, ignore), det_opt)}, repeats + 1)
    return [
        Row(sec, "fit_deterministic, per step [s, this machine]", t_fit.median("det") / steps),
        Row(sec, "fit_svi, per step [s, this machine]", t_fit.median("svi") / steps),
        Row(sec, "fit_svi step / fit_deterministic step (public API)", t_fit.ratio("svi", "det"), "<= 1.3"),
        Row(sec, "bare step: SVI / deterministic", t_step.ratio("svi", "det"), "<= 1.3",
            f"{t_step.median('svi'):.3g} s vs {t_step.median('det'):.3g} s"),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    for row in run(args.quick):
        print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()
