"""Which `fit_svi` defaults learn the posterior widths whatever ``init_scale`` is? (issue 25, item 10)

For each candidate setting, two fits from scratch differ only in ``init_scale`` (1e-3 vs 1e-2):
``UNet2SigmoidVI(hidden=8)`` (its default prior), 24 simulated 64x64 frames (`SimulatedDataset`,
seed 0, stored as arrays so every epoch sees the same pixels), batch 4, 50 epochs (300 steps),
every other argument of `fit_svi` at its default except the candidate's own.  Reported per fit:
the median posterior sigma of each conv *weight* site (biases excluded) and the mean epistemic
map (mutual information, nats; ``predict``, T = 32, seed 0) of one held-out 128x128 frame
(dataset seed ``HELD_OUT_SEED``).  A candidate passes when, for every layer, the two fits' median
sigmas are within 2x of each other and so are their mean epistemics.

Run: ``python benchmarks/kl_beta_study.py [--candidates NAME ...] [--epochs 50]``; writes
``benchmarks/kl_beta_out/{table.md,results.json}`` (results of earlier candidates are kept, so
candidates can run in separate processes).  One torch thread.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.data.seeds import HELD_OUT_SEED  # noqa: E402
from cosmiq_pyro.inference.fit import fit_svi  # noqa: E402
from cosmiq_pyro.inference.predictive import predict  # noqa: E402
from cosmiq_pyro.models.bayesian import UNet2SigmoidVI  # noqa: E402
from cosmiq_pyro.models.guides import guide_scales  # noqa: E402

OUT = ROOT / "benchmarks" / "kl_beta_out"
SIZE, N_TRAIN, HIDDEN, BATCH = 64, 24, 8, 4
INIT_SCALES = (1e-3, 1e-2)

#: name -> (description, fit_svi keyword arguments); ``"default"`` = this package's defaults.
CANDIDATES = {
    "seed_1e-6": ("kl_beta = 1e-6 (the default before this change)", {"kl_beta": 1e-6}),
    "exact": ("kl_beta = 1 / (64*64), the exact per-pixel ELBO", {"kl_beta": 1.0 / SIZE ** 2}),
    "default": ("every argument at this package's default", {}),
    "exact_slr0.01": ("exact ELBO, scale_lr = 0.01", {"kl_beta": 1.0 / SIZE ** 2, "scale_lr": 0.01}),
    "exact_slr0.1": ("exact ELBO, scale_lr = 0.1", {"kl_beta": 1.0 / SIZE ** 2, "scale_lr": 0.1}),
    "exact_slr0.2": ("exact ELBO, scale_lr = 0.2", {"kl_beta": 1.0 / SIZE ** 2, "scale_lr": 0.2}),
    "exact_slr0.3": ("exact ELBO, scale_lr = 0.3", {"kl_beta": 1.0 / SIZE ** 2, "scale_lr": 0.3}),
    "exact_slr0.5": ("exact ELBO, scale_lr = 0.5", {"kl_beta": 1.0 / SIZE ** 2, "scale_lr": 0.5}),
    "exact_slr0.1_p2": ("exact ELBO, scale_lr = 0.1, num_particles = 2",
                        {"kl_beta": 1.0 / SIZE ** 2, "scale_lr": 0.1, "num_particles": 2}),
    "exact_slr0.1_p2_seed1": ("the same, fit seed 1 (another initialisation and batch order)",
                              {"kl_beta": 1.0 / SIZE ** 2, "scale_lr": 0.1, "num_particles": 2, "seed": 1}),
    "exact_p2": ("exact ELBO, num_particles = 2 (scale_lr 0.05)",
                 {"kl_beta": 1.0 / SIZE ** 2, "num_particles": 2}),
    "seed_1e-6_slr0.2": ("kl_beta = 1e-6, scale_lr = 0.2", {"kl_beta": 1e-6, "scale_lr": 0.2}),
}


def arrays(n: int, size: int, seed: int):
    ds = SimulatedDataset(n, size=size, seed=seed)
    items = [ds[i] for i in range(n)]
    return tuple(torch.stack([item[k][0] for item in items]).numpy() for k in range(3))  # 3 x (N, H, W)


def weight_sigmas(result) -> dict:
    """Median posterior sigma of every conv weight site (the ``.weight`` sites, not biases)."""
    sites = [s for s in result.model.weight_sites if s.endswith(".weight")]
    return {site: float(s.median()) for site, s in guide_scales(result.guide, sites).items()}


def one_fit(kwargs: dict, init_scale: float, train, held_out, epochs: int) -> dict:
    torch.manual_seed(0)
    model = UNet2SigmoidVI(hidden=HIDDEN)
    start = time.perf_counter()
    result = fit_svi(model, train, epochs=epochs, batch_size=BATCH, init_scale=init_scale, progress=False,
                     **kwargs)
    seconds = time.perf_counter() - start
    epistemic = float(predict(result, held_out, T=32, seed=0, progress=False, novelty=False).epistemic.mean())
    return {"sigma": weight_sigmas(result), "epistemic": epistemic, "seconds": seconds,
            "final_loss": float(np.mean(result.history["loss"][-6:]))}


def ratios(pair: dict) -> dict:
    small, large = pair[str(INIT_SCALES[0])], pair[str(INIT_SCALES[1])]
    layer = {site: large["sigma"][site] / small["sigma"][site] for site in small["sigma"]}
    return {"layer_max": max(max(r, 1 / r) for r in layer.values()),
            "epistemic": large["epistemic"] / small["epistemic"] if small["epistemic"] > 0 else float("inf")}


def table(results: dict) -> str:
    lines = ["| candidate | init_scale | median sigma of the weights per layer (min - max over layers) "
             "| mean epistemic (nats) | largest per-layer sigma ratio | epistemic ratio | within 2x | s per fit |",
             "|---|---:|---|---:|---:|---:|---|---:|"]
    for name, entry in results.items():
        r = ratios(entry["fits"])
        ok = r["layer_max"] <= 2 and 0.5 <= r["epistemic"] <= 2
        for scale in INIT_SCALES:
            fit = entry["fits"][str(scale)]
            sig = list(fit["sigma"].values())
            lines.append(f"| {name}: {entry['description']} | {scale:g} | {np.median(sig):.3g} ({min(sig):.3g} - "
                         f"{max(sig):.3g}) | {fit['epistemic']:.3g} | {r['layer_max']:.2f} | {r['epistemic']:.2f} | "
                         f"{'yes' if ok else 'no'} | {fit['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    train = arrays(N_TRAIN, SIZE, 0)
    held_out = arrays(1, 128, HELD_OUT_SEED)[0][0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    for name in args.candidates:
        description, kwargs = CANDIDATES[name]
        fits = {}
        for scale in INIT_SCALES:
            fits[str(scale)] = one_fit(kwargs, scale, train, held_out, args.epochs)
            print(f"{name} init_scale {scale:g}: {fits[str(scale)]}", flush=True)
        results[name] = {"description": description, "kwargs": kwargs, "fits": fits, "epochs": args.epochs,
                         "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "machine": platform.machine()}
        results_file.write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "table.md").write_text(table(results))
        print(table({name: results[name]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
