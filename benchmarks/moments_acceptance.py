"""Frame-level metrics of the sampling-free predictive against T = 16 MC and its seed spread
(issue 23, item 3), on the acceptance set of ``benchmarks/accept_published.py`` (held-out
256x256 frames, driz_cr labels, defects on), and astroscrappy's real GMOS frame.

Predictors: the shipped ``ACS-WFC-VI`` with T = 16 iid MC, run with 5 compare seeds (0..4:
different posterior draws per frame), and the moment pass (`MomentPass`, the model's stored
variance scale; one tile per 256x256 frame).  Metrics are `cosmiq_pyro.evaluation.study.compare`'s
(TPR at 0.05 % and 0.5 % FPR, Brier, NLL, ECE, AURC, error AUROC of the entropy).  The moment
pass passes a metric when it is no worse than the mean of the 5 MC seeds by more than their
spread (max - min).

    python benchmarks/moments_acceptance.py --n 300 --out benchmarks/moments_out/acceptance
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from accept_published import datasets, gmos_electrons, gmos_row  # noqa: E402

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.evaluation.peers import ModelPredictor, PeerPrediction  # noqa: E402
from cosmiq_pyro.evaluation.study import compare  # noqa: E402
from cosmiq_pyro.inference.moments import MomentPass  # noqa: E402
from cosmiq_pyro.inference.predictive import validated_image  # noqa: E402
from cosmiq_pyro.utils.tiling import pad_to_grid  # noqa: E402

METRICS = {"tpr_pct_at_0.05pct_fpr": "higher", "tpr_pct_at_0.5pct_fpr": "higher", "brier": "lower",
           "nll": "lower", "ece": "lower", "aurc": "lower", "error_auroc_entropy": "higher"}


class MomentsPredictor:
    """The moment pass behind the peer interface (whole frame as one tile)."""

    is_probability = True

    def __init__(self, model):
        self.moments = MomentPass(model)

    def predict(self, image, ignore=None, meta=None, seed: int = 0) -> PeerPrediction:
        x = validated_image(image, ignore)
        height, width = x.shape
        prob, alea, epi = self.moments(torch.from_numpy(pad_to_grid(x))[None, None])
        prob, alea, epi = (t[0, 0, :height, :width].numpy() for t in (prob, alea, epi))
        return PeerPrediction(prob=prob, entropy=alea + epi, epistemic=epi, T=1, is_probability=True)


def gmos_moments(vi) -> dict:
    """Both known CRs of astroscrappy's GMOS frame (electrons as stored: before 2026-12-07 this
    multiplied it by 1.933) flagged (p > 0.5) and nothing else > 20 px."""
    return gmos_row("moments", MomentsPredictor(vi).predict(gmos_electrons()).prob)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="frames of the acceptance set (its first n)")
    p.add_argument("--seeds", type=int, default=5, help="MC compare seeds")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "moments_out" / "acceptance")
    p.add_argument("--reuse-mc", type=Path, default=None, metavar="OVERALL.csv",
                   help="MC rows of an earlier run on the same frames (only the moment pass is rerun)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    vi = cq.load("ACS-WFC-VI")
    drizcr, _ = datasets(args.n)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.reuse_mc is not None:
        earlier = pd.read_csv(args.reuse_mc)
        rows.append(earlier[earlier["predictor"].str.startswith("MC")])
        table = compare({"moments": MomentsPredictor(vi)}, drizcr, T=16, seed=0, progress=False).table
        rows.append(table[(table["field"] == "all") & (table["filter"] == "all")])
    for seed in range(0 if args.reuse_mc is not None else args.seeds):
        predictors = {f"MC T=16 seed {seed}": ModelPredictor(vi, T=16)}
        if seed == 0:
            predictors["moments"] = MomentsPredictor(vi)
        table = compare(predictors, drizcr, T=16, seed=seed, progress=False).table
        rows.append(table[(table["field"] == "all") & (table["filter"] == "all")])
        print(f"seed {seed} done, {time.time() - started:.0f} s", flush=True)
    overall = pd.concat(rows)[["predictor"] + list(METRICS)]
    mc = overall[overall["predictor"].str.startswith("MC")]
    mom = overall[overall["predictor"] == "moments"].iloc[0]
    verdict = []
    for metric, better in METRICS.items():
        mean, spread = float(mc[metric].mean()), float(mc[metric].max() - mc[metric].min())
        worse_by = (mean - mom[metric]) if better == "higher" else (mom[metric] - mean)
        verdict.append({"metric": metric, "moments": float(mom[metric]), "mc_mean": mean,
                        "mc_min": float(mc[metric].min()), "mc_max": float(mc[metric].max()),
                        "mc_spread": spread, "moments_worse_by": worse_by, "pass": bool(worse_by <= spread)})
    verdict = pd.DataFrame(verdict)
    overall.to_csv(args.out / "overall.csv", index=False)
    verdict.to_csv(args.out / "verdict.csv", index=False)
    gm = gmos_moments(vi)
    (args.out / "run.json").write_text(json.dumps({"n_frames": args.n, "mc_seeds": args.seeds, "gmos": gm,
                                                   "seconds": round(time.time() - started)}, indent=1) + "\n")
    print(overall.to_string(index=False))
    print(verdict.to_string(index=False))
    print("gmos:", gm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
