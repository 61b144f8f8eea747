"""Per-pixel accuracy of the sampling-free predictive against the T = 256 MC reference (issue 23,
item 3): RMS error of ``p`` and of the epistemic term over all valid pixels and over CR pixels,
the rank correlation (Spearman) of the epistemic map with the reference's, and the mean
epistemic term on CR pixels, for each candidate and for iid MC at T = 16 (5 seeds).

Reference: the frames written by ``benchmarks/moments_reference.py`` (``--ref``).  Errors are
pooled over the pixels of every frame (RMS of all valid pixels of all frames together); the
rank correlation is computed per frame and averaged.  T = 16 rows give the mean over its 5 seeds
and, in brackets, the worst seed.

    python benchmarks/moments_accuracy.py --ref /work/team/moments_ref --out benchmarks/moments_out
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.inference.moments import MomentPass, MomentSettings, moment_settings  # noqa: E402

METRICS = ("rms_p_all", "rms_p_cr", "rms_epi_all", "rms_epi_cr", "spearman_epi", "mean_epi_cr")


def scores(frames: list[dict], maps: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """The metrics of one method: ``maps[i] = (prob, epistemic)`` of ``frames[i]``."""
    sq = {k: [0.0, 0] for k in ("p_all", "p_cr", "epi_all", "epi_cr")}
    rhos, epi_cr = [], []
    for ref, (p, e) in zip(frames, maps):
        valid = ~ref["ignore"]
        cr = ref["mask"] & valid
        for name, sel in (("all", valid), ("cr", cr)):
            sq[f"p_{name}"][0] += float(((p - ref["prob"])[sel] ** 2).sum())
            sq[f"epi_{name}"][0] += float(((e - ref["epistemic"])[sel] ** 2).sum())
            sq[f"p_{name}"][1] += int(sel.sum())
            sq[f"epi_{name}"][1] += int(sel.sum())
        rhos.append(spearmanr(e[valid], ref["epistemic"][valid])[0])
        epi_cr.append(e[cr])
    out = {f"rms_{k}": np.sqrt(s / max(n, 1)) for k, (s, n) in sq.items()}
    out["spearman_epi"] = float(np.mean(rhos))
    out["mean_epi_cr"] = float(np.concatenate(epi_cr).mean())
    return out


def moment_maps(vi, frames, settings: MomentSettings):
    mp = MomentPass(vi, settings=settings)
    out = []
    for ref in frames:
        prob, _, epi = mp(torch.from_numpy(ref["image"])[None, None])
        out.append((prob[0, 0].numpy(), epi[0, 0].numpy()))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", type=Path, default=Path("/work/team/moments_ref"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "moments_out")
    p.add_argument("--scales", type=float, nargs="*", default=[], help="extra variance scales (no cap) to tabulate")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    vi = cq.load("ACS-WFC-VI")
    files = sorted(glob.glob(str(args.ref / "frame_*.npz")))
    frames = [dict(np.load(f)) for f in files]
    fitted = moment_settings(vi)
    rows = {}
    cap = "" if fitted.variance_cap is None else f", v_max = {fitted.variance_cap:.3g}"
    cases = {f"moments, argmax pool, c = {fitted.variance_scale:.3g}{cap} (fitted)": fitted,
             "moments, argmax pool, c = 1 (uncalibrated)": MomentSettings(1.0, "argmax"),
             "moments, Clark pool, c = 1 (uncalibrated)": MomentSettings(1.0, "clark"),
             f"moments, Clark pool, c = {fitted.variance_scale:.3g}": MomentSettings(fitted.variance_scale, "clark")}
    cases.update({f"moments, argmax pool, c = {c:.3g}, no cap": MomentSettings(c, "argmax") for c in args.scales})
    for name, settings in cases.items():
        rows[name] = scores(frames, moment_maps(vi, frames, settings))
    seeds = [scores(frames, [(f["prob16"][s], f["epistemic16"][s]) for f in frames]) for s in range(5)]
    rows["iid MC T = 16 (mean of 5 seeds)"] = {k: float(np.mean([s[k] for s in seeds])) for k in METRICS}
    worst = {k: (min if k == "spearman_epi" else max)(s[k] for s in seeds) for k in METRICS}
    worst["mean_epi_cr"] = float(np.mean([s["mean_epi_cr"] for s in seeds]))
    rows["iid MC T = 16 (worst seed)"] = worst
    rows["reference T = 256"] = {**{k: 0.0 for k in METRICS}, "spearman_epi": 1.0,
                                 "mean_epi_cr": float(np.concatenate([f["epistemic"][f["mask"] & ~f["ignore"]]
                                                                      for f in frames]).mean())}
    n_cr = sum(int((f["mask"] & ~f["ignore"]).sum()) for f in frames)
    lines = [f"{len(frames)} held-out 256x256 frames ({n_cr} CR pixels), reference T = 256 MC", "",
             "| method | RMS p (all) | RMS p (CR) | RMS epistemic (all) | RMS epistemic (CR) | Spearman epistemic | mean epistemic on CR (nats) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:.3g}" for k in METRICS) + " |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.md").write_text(table + "\n")
    (args.out / "accuracy.json").write_text(json.dumps({"n_frames": len(frames), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
