"""Which layers of the shipped model carry its epistemic uncertainty (issue 23, candidate 2d)?

A cheaper sampler would share one deterministic pass of the early layers among all posterior
draws and sample only the later ones; that is accurate only if the later layers carry nearly all
of the epistemic term.  This measures it: Monte Carlo (T draws, the same seed) with only a subset
of weight sites sampled and every other site at its posterior mean, on held-out 256x256 ACS/WFC
frames (the ACS acceptance set's first ``--n``), against every site sampled.  Reported per subset:
the summed epistemic map over all valid pixels relative to the full posterior's, the mean
epistemic term on truth CR pixels, and the RMS distance of the epistemic and probability maps to
the full posterior's (which include the Monte Carlo noise of both runs).

    OMP_NUM_THREADS=2 python benchmarks/layer_variance_shares.py --n 6 --T 64 \\
        --out benchmarks/moments_out/layer_shares.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from accept_camera import run_info  # noqa: E402

from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.data.seeds import HELD_OUT_SEED  # noqa: E402
from cosmiq_pyro.inference import predictive  # noqa: E402
from cosmiq_pyro.models.guides import guide_locs  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402

#: site-name prefixes sampled in each run (None: every site); the net is inc -> down -> up -> head
SUBSETS = {"all sites": None, "encoder (inc, down)": ("inc.", "down."), "decoder (up, head)": ("up.", "head."),
           "up.block + head": ("up.block.", "head."), "up.block.conv2 + head": ("up.block.conv2.", "head."),
           "head": ("head.",)}


def partial_draws(weight_chunks, locs: dict, sampled):
    """``weight_chunks`` with every site outside the prefixes ``sampled`` held at its mean."""
    def chunks(net, guide, T, seed, chunk=32, device=None):
        for draws in weight_chunks(net, guide, T, seed, chunk=chunk, device=device):
            yield {s: w if sampled is None or s.startswith(sampled) else locs[s].to(w).expand_as(w).clone()
                   for s, w in draws.items()}
    return chunks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ACS-WFC-VI")
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    started = time.time()
    model = load_model(args.model)
    locs = guide_locs(model.guide)
    ds = SimulatedDataset(args.n, size=256, seed=HELD_OUT_SEED + 13_000, instrument="ACS-WFC")
    original = predictive.weight_chunks
    maps = {}
    try:
        for name, sampled in SUBSETS.items():
            predictive.weight_chunks = partial_draws(original, locs, sampled)
            e, prob, y = [], [], []
            for i in range(len(ds)):
                frame = ds.frame(i)
                keep = ~frame.ignore
                pred = predictive.predict(model, frame.image, T=args.T, seed=0, ignore=frame.ignore, novelty=False,
                                          progress=False)
                e.append(pred.epistemic[keep]), prob.append(pred.prob[keep]), y.append(frame.mask[keep])
            maps[name] = tuple(map(np.concatenate, (e, prob, y)))
    finally:
        predictive.weight_chunks = original
    e_all, p_all, y = maps["all sites"]
    rows = [{"sampled": name, "epistemic_sum_share": float(e.sum() / e_all.sum()),
             "mean_epistemic_cr_nats": float(e[y].mean()),
             "rms_epistemic_to_all": float(np.sqrt(np.mean((e - e_all) ** 2))),
             "rms_p_to_all": float(np.sqrt(np.mean((prob - p_all) ** 2)))} for name, (e, prob, _) in maps.items()]
    out = {**run_info(), "model": args.model, "n_frames": args.n, "T": args.T, "torch_threads": torch.get_num_threads(),
           "seconds": round(time.time() - started), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(f"{r['sampled']:24s} epistemic share {r['epistemic_sum_share']:.3f}  mean E on CR "
              f"{r['mean_epistemic_cr_nats']:.5f}  RMS E {r['rms_epistemic_to_all']:.5f}  RMS p {r['rms_p_to_all']:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
