"""Time every metric of `cosmiq_pyro.evaluation.metrics` on 1e8 pixels (25 frames of 2000 x 2000).

Usage::

    python benchmarks/bench_metrics.py [--frames 25] [--size 2000] [--ignore-frac 0.0] [--seed 0]

Inputs: float32 p, bool y (1 % CR pixels), float32 u (the binary entropy of p, nats).
Negatives have logits ~ N(-8, 2), CRs ~ N(4, 3), so most p sit near 0 as in real masks.
Prints seconds and millions of pixels per second for each call, and the peak resident memory.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from cosmiq_pyro.evaluation import metrics as M
from timing import process_memory_mb


def make_inputs(frames: int, size: int, ignore_frac: float, seed: int):
    rng = np.random.default_rng(seed)
    shape = (frames, size, size)
    p = np.empty(shape, np.float32)
    y = np.empty(shape, bool)
    u = np.empty(shape, np.float32)
    ignore = np.empty(shape, bool) if ignore_frac > 0 else None
    for k in range(frames):  # one frame at a time keeps temporaries small
        yk = rng.random((size, size), dtype=np.float32) < 0.01
        z = np.where(yk, rng.normal(4.0, 3.0, (size, size)), rng.normal(-8.0, 2.0, (size, size)))
        pk = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        p[k], y[k] = pk, yk
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -(pk * np.log(pk) + (1 - pk) * np.log1p(-pk))
        u[k] = np.nan_to_num(h, nan=0.0)
        if ignore is not None:
            ignore[k] = rng.random((size, size), dtype=np.float32) < ignore_frac
    return p, y, u, ignore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--ignore-frac", type=float, default=0.0,
                    help="fraction of pixels flagged in an ignore mask passed to every call")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    p, y, u, ig = make_inputs(args.frames, args.size, args.ignore_frac, args.seed)
    n = p.size
    print(f"inputs: {p.shape} = {n:.3g} pixels, {y.mean():.2%} CR, ignore_frac={args.ignore_frac} "
          f"(made in {time.perf_counter() - t0:.1f} s)")

    calls = [
        ("brier", lambda: M.brier(p, y, ignore=ig)),
        ("nll", lambda: M.nll(p, y, ignore=ig)),
        ("ece (uniform, 15 bins)", lambda: M.ece(p, y, ignore=ig)),
        ("ece (quantile, 15 bins)", lambda: M.ece(p, y, strategy="quantile", ignore=ig)),
        ("reliability_curve", lambda: M.reliability_curve(p, y, ignore=ig)),
        ("roc_curve (exact)", lambda: M.roc_curve(p, y, ignore=ig)),
        ("roc_curve (500 thresholds)",
         lambda: M.roc_curve(p, y, np.linspace(0.001, 0.999, 500), ignore=ig)),
        ("roc_curve (exact, dilate=1)", lambda: M.roc_curve(p, y, dilate=1, ignore=ig)),
        ("tpr_at_fpr", lambda: M.tpr_at_fpr(p, y, ignore=ig)),
        ("tpr_at_fpr (dilate=1)", lambda: M.tpr_at_fpr(p, y, dilate=1, ignore=ig)),
        ("roc_auc", lambda: M.roc_auc(p, y, ignore=ig)),
        ("risk_coverage (gives aurc, e_aurc)", lambda: M.risk_coverage(p, y, u, ignore=ig)),
        ("error_vs_uncertainty (quantile)", lambda: M.error_vs_uncertainty(p, y, u, ignore=ig)),
        ("error_vs_uncertainty (uniform)",
         lambda: M.error_vs_uncertainty(p, y, u, strategy="uniform", ignore=ig)),
        ("error_detection_auroc", lambda: M.error_detection_auroc(p, y, u, ignore=ig)),
    ]
    print(f"{'metric':<36} {'seconds':>8} {'Mpix/s':>8}  result")
    for name, fn in calls:
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        if isinstance(out, float):
            summary = f"{out:.6g}"
        elif hasattr(out, "thresholds"):
            summary = f"{out.thresholds.size} points"
        elif hasattr(out, "aurc"):
            summary = f"AURC {out.aurc:.4g}, E-AURC {out.e_aurc:.4g}, {out.coverage.size} points"
        elif hasattr(out, "tpr_pct"):
            summary = "TPR % " + ", ".join(f"{v:.2f}" for v in out.tpr_pct)
        else:
            summary = type(out).__name__
        print(f"{name:<36} {dt:8.2f} {n / dt / 1e6:8.1f}  {summary}", flush=True)
    peak_gb = process_memory_mb("VmHWM") / 1024
    print(f"peak resident memory: {peak_gb:.1f} GB")


if __name__ == "__main__":
    main()
