"""Every predictive method on CUDA against the CPU (issue 23, item 7): agreement and time.

For the shipped ``ACS-WFC-VI`` on one simulated held-out frame (``--side`` px, default 1024), each
method of `cosmiq_pyro.inference.methods.METHODS` runs on the CPU and on ``--device`` (default
cuda) with the same seed: the largest |delta p| and |delta epistemic| between the two, and the
wall time of each (CUDA synchronised; one warm-up call first).  Antithetic and Sobol draws are made
on the CPU, so their maps must agree to float rounding; iid draws come from the device's own RNG
(``"mc"`` on CUDA uses CUDA's generator), so only their statistics agree: the table gives the RMS
difference of p for them, which is Monte Carlo noise of order that of two independent runs.

    python benchmarks/device_methods.py [--side 1024] [--T 16] [--device cuda]

Exits with status 2 (and says so) when the device is not available.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.data.seeds import HELD_OUT_SEED  # noqa: E402
from cosmiq_pyro.inference.methods import METHODS  # noqa: E402
from cosmiq_pyro.inference.predictive import predict  # noqa: E402
from cosmiq_pyro.utils.torchtools import resolve_device  # noqa: E402


def timed(device, **kwargs):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    pred = predict(device=device, progress=False, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return pred, time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        print(f"device_methods: {err}", file=sys.stderr)
        return 2
    cpu = torch.device("cpu")
    vi = cq.load("ACS-WFC-VI", device=cpu)
    frame = SimulatedDataset(1, size=args.side, seed=HELD_OUT_SEED + 23_500).frame(0)
    print(f"| method | T | CPU s | {device} s | max abs dp | RMS dp | max abs d epistemic |")
    print("|---|---|---|---|---|---|---|")
    for name, method in METHODS.items():
        T = args.T if method.sampling else None
        kwargs = dict(model=vi, image=frame.image, ignore=frame.ignore, method=name, T=T, seed=1)
        timed(device, **kwargs)  # warm-up (CUDA context, kernels)
        on_device, dev_s = timed(device, **kwargs)
        on_cpu, cpu_s = timed(cpu, **kwargs)
        dp = on_device.prob.astype(np.float64) - on_cpu.prob
        de = on_device.epistemic.astype(np.float64) - on_cpu.epistemic
        print(f"| {name} | {T or ''} | {cpu_s:.2f} | {dev_s:.3f} | {np.abs(dp).max():.2g} | "
              f"{np.sqrt((dp ** 2).mean()):.2g} | {np.abs(de).max():.2g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
