"""Cheap predictives against the T = 256 MC reference of the shipped ``ACS-WFC-VI`` (issue 23, item
2c): iid MC at T = 4 and 8 (and the reference files' T = 16) and the moment pass.

The variance-reduced candidates of item 2c (``method="mc-antithetic"``: pairs ``mu +- s eps``;
``method="mc-sobol"``: ``eps = Phi^-1(u)``, u from Owen-scrambled Sobol engines) were measured
with this script at commit 3a83610 of branch mc-methods, where they existed; they did not earn a
place and were deleted (the table is in docs/predictive_methods.md and /work/team/mc_methods_rows.md).

Frames and reference: the ``frame_NN.npz`` files of ``--ref`` (default /work/team/moments_ref,
made by benchmarks/moments_reference.py: 256x256 held-out simulated frames of every field and
filter, the T = 256 seed-0 maps, and iid T = 16 maps of seeds 1..5).  Every candidate runs through
`cosmiq_pyro.predict` (``method=``, ``T=``, ``seed=`` 1..``--seeds``, novelty off) on the same
frames.

Per (method, T), pooled over frames, for each seed: the RMS error against the reference of ``p``
and of the epistemic map over all valid pixels (``~ignore``) and over CR pixels (truth mask),
and the Spearman rank correlation of the epistemic map with the reference's (per frame, then
the mean).  The table gives the mean over seeds and, in brackets, the standard deviation over
seeds.  iid T = 16 uses the reference files' own T = 16 maps (the same draws `predict` makes with
those seeds, T <= 32).

    python benchmarks/cheap_predictives.py [--ref DIR] [--seeds 5] [--out rows.md]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.inference.predictive import predict  # noqa: E402

CANDIDATES = [("mc", 4), ("mc", 8), ("moments", None)]


def metrics(ref: dict, prob: np.ndarray, epistemic: np.ndarray) -> dict:
    """Squared-error sums and counts (to pool over frames) and the epistemic rank correlation."""
    valid = ~ref["ignore"].astype(bool)
    cr = valid & ref["mask"].astype(bool)
    out = {}
    for name, sel in (("all", valid), ("cr", cr)):
        out[f"p_{name}"] = float(((prob - ref["prob"])[sel].astype(np.float64) ** 2).sum())
        out[f"e_{name}"] = float(((epistemic - ref["epistemic"])[sel].astype(np.float64) ** 2).sum())
        out[f"n_{name}"] = int(sel.sum())
    out["rho"] = float(spearmanr(epistemic[valid], ref["epistemic"][valid]).statistic)
    return out


def pooled(rows: list[dict]) -> dict:
    """RMS values from the pooled squared-error sums, and the mean rank correlation."""
    tot = {k: sum(r[k] for r in rows) for k in rows[0] if k != "rho"}
    return {"p_all": (tot["p_all"] / tot["n_all"]) ** 0.5, "p_cr": (tot["p_cr"] / tot["n_cr"]) ** 0.5,
            "e_all": (tot["e_all"] / tot["n_all"]) ** 0.5, "e_cr": (tot["e_cr"] / tot["n_cr"]) ** 0.5,
            "rho": float(np.mean([r["rho"] for r in rows]))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", type=Path, default=Path("/work/team/moments_ref"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--frames", type=int, default=0, help="use the first N frames (0: all)")
    p.add_argument("--out", type=Path, default=None, help="write the markdown rows here")
    p.add_argument("--methods", default=None, help="comma-separated subset of the candidates' methods")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    files = sorted(args.ref.glob("frame_*.npz"))
    files = [f for f in files if not f.name.endswith(".tmp.npz")]
    if args.frames:
        files = files[:args.frames]
    if not files:
        raise SystemExit(f"no frame_NN.npz in {args.ref}")
    vi = cq.load("ACS-WFC-VI")
    candidates = [c for c in CANDIDATES if args.methods is None or c[0] in args.methods.split(",")]
    seeds = range(1, args.seeds + 1)
    per = {(m, T, s): [] for m, T in candidates + [("mc", 16)] for s in seeds}
    seconds = {(m, T): 0.0 for m, T in candidates}
    for f in files:
        ref = dict(np.load(f))
        for s in seeds:
            per[("mc", 16, s)].append(metrics(ref, ref["prob16"][s - 1], ref["epistemic16"][s - 1]))
            for m, T in candidates:
                if T is None and s > seeds[0]:  # a sampling-free method gives the same maps for every seed
                    per[(m, T, s)].append(per[(m, T, seeds[0])][-1])
                    continue
                start = time.perf_counter()
                pred = predict(vi, ref["image"], ignore=ref["ignore"].astype(bool), method=m, T=T, seed=s,
                               progress=False, novelty=False)
                seconds[(m, T)] += time.perf_counter() - start
                per[(m, T, s)].append(metrics(ref, pred.prob, pred.epistemic))
        print(f"{f.name} done", flush=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"Variance-reduced MC vs the T = 256 MC reference ({len(files)} frames of 256x256 from {args.ref}, "
             f"seeds 1..{args.seeds}; mean over seeds, (sd over seeds)); "
             f"{datetime.date.today()}, commit {commit}, {platform.machine()} {os.cpu_count()}-core CPU, "
             f"1 torch thread, no GPU; load average {os.getloadavg()[0]:.1f} at the end (the s / frame "
             "column is wall time on this shared machine, not a benchmark).", "",
             "| method | T | RMS p (all) | RMS p (CR) | RMS epistemic (all) | RMS epistemic (CR) | "
             "rank corr. epistemic | s / frame |",
             "|---|---|---|---|---|---|---|---|"]
    for m, T in [("mc", 16)] + candidates:
        stats = [pooled(per[(m, T, s)]) for s in seeds]
        cells = []
        for k in ("p_all", "p_cr", "e_all", "e_cr", "rho"):
            v = np.array([st[k] for st in stats])
            cells.append(f"{v.mean():.3g} ({v.std(ddof=1) if len(v) > 1 else 0:.2g})")
        calls = len(files) * (1 if T is None else args.seeds)
        sec = "" if (m, T) not in seconds else f"{seconds[(m, T)] / calls:.2f}"
        lines.append(f"| {m} | {T or '-'} | " + " | ".join(cells) + f" | {sec} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
