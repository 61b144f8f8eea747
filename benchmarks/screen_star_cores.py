"""Quick screen of candidate models on star cores and bright CR cores (issue 22): the first
``--n`` frames of `accept_camera.py`'s held-out sets (real rate and, for a camera trained at a
boosted rate, the boosted set with the model told that rate), Monte Carlo with ``--T`` draws
(the same frame seeds for every model), and the acceptance's definitions: star-core pixels
flagged at p > 0.5 (`metrics.star_core_flags`), bright CR cores at p >= 0.99, TPR at 0.05 % and
0.5 % pixel FPR, ECE.

    python benchmarks/screen_star_cores.py --camera DECam --n 150 --T 8 \\
        --models DECam-VI /path/wide32.pth /path/wide48.pth --out screen.json
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
from accept_camera import BRIGHT_SIGMA, HELD_OUT_BOOSTED, HELD_OUT_REAL, at_rate, held_out_set, run_info  # noqa: E402

from cosmiq_pyro.data.simulate import STAR_CORE_RADIUS_PX, bright_star_peaks  # noqa: E402
from cosmiq_pyro.evaluation import metrics  # noqa: E402
from cosmiq_pyro.evaluation.study.collect import _frame_seed  # noqa: E402
from cosmiq_pyro.inference.predictive import predict  # noqa: E402
from cosmiq_pyro.instruments import get_instrument  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402


def screen(model, ds, T: int) -> dict:
    """The figures of one model on one set (module docstring)."""
    scale = ds.instrument.detector.pixel_scale_arcsec
    stars, bright, probs, truth = metrics.StarCoreFlags(0, 0), [], [], []
    for i in range(len(ds)):
        frame = ds.frame(i)
        keep = ~frame.ignore
        prob = predict(model, frame.image, ignore=frame.ignore, T=T, seed=_frame_seed(0, i), novelty=False,
                       progress=False).prob
        peaks = bright_star_peaks(frame, scale)
        if peaks is not None and len(peaks):
            stars += metrics.star_core_flags(prob, frame.mask, peaks, radius_px=STAR_CORE_RADIUS_PX, ignore=frame.ignore)
        noise = np.sqrt(frame.noiseless + frame.meta["read_noise_e"] ** 2)
        bright.append(prob[frame.mask & (frame.cr_image > BRIGHT_SIGMA * noise) & keep])
        probs.append(prob[keep])
        truth.append(frame.mask[keep])
    p, y, b = np.concatenate(probs), np.concatenate(truth), np.concatenate(bright)
    clean = np.sort(p[~y])[::-1]
    return {"star_core_pct": 100 * stars.fraction, "star_core_flagged": stars.n_flagged, "star_core_px": stars.n_px,
            "bright_ge_0.99_pct": float(100 * (b >= 0.99).mean()) if b.size else None, "bright_px": int(b.size),
            **{f"tpr_pct_at_{100 * f:g}pct_fpr": float(100 * (p[y] > clean[int(f * clean.size)]).mean())
               for f in (0.0005, 0.005)},
            "ece": float(metrics.ece(p, y))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camera", required=True)
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--n", type=int, default=150)
    p.add_argument("--T", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    boost = float(get_instrument(args.camera).simulation.cr_rate_multiplier)
    sets = {"x1": (HELD_OUT_REAL, 1.0)}
    if boost != 1.0:
        sets[f"x{boost:g}"] = (HELD_OUT_BOOSTED, boost)
    out = {"run": run_info(), "camera": args.camera, "n_frames": args.n, "T": args.T, "results": {}}
    for name in args.models:
        model = load_model(name)
        for key, (seed, multiplier) in sets.items():
            ds = held_out_set(args.camera, args.n, seed, multiplier)
            row = screen(at_rate(model, multiplier), ds, args.T)
            out["results"].setdefault(name, {})[key] = row
            print(name, key, json.dumps(row), f"{time.time() - started:.0f} s", flush=True)
    out["seconds"] = round(time.time() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
