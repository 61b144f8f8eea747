"""Calibration families for the propagated logit variance of the moment passes (issue 23, item
2b), fitted on the model's validation frames against MC and judged on the study reference.

For each pass (``full``: `models.moment_net`, argmax pool; ``linear`` and ``linear-bf16``:
`models.linear_moments`) the tempered, uncalibrated logit moments ``(m, v)`` of every frame are
computed once; then each family ``v -> v_cal(m, v; theta)`` is fitted by L-BFGS (autograd through
the 16-node Gauss-Hermite quadrature, float64) to minimise the squared error of the epistemic map
against T-draw MC on the validation frames (all valid pixels with ``m > -15``: the others carry
no epistemic term, < 3e-5 nats), and scored on the study frames with `moments_accuracy.scores`:

* ``scalar+cap``: ``u = c v``, ``v_cal = u / (1 + u / v_max)`` (the shipped form);
* ``loglin+cap``: ``u = exp(a + b log v + g m)``, capped the same way;
* ``mtable+cap``: ``u = exp(a + b log v + t(m))``, ``t`` piecewise linear through 8 knots in
  ``m`` (-12 ... 6), capped.

Validation frames: the first ``--val-n`` frames of the model's validation set (recipe
``val_seed``), MC with ``--val-T`` draws (seed 0), cached in ``--val`` (`moments_reference.mc_maps`).

    python benchmarks/moments_families.py --ref /work/team/moments_ref --val /work/scratch/val
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.inference.moments import moment_settings  # noqa: E402
from cosmiq_pyro.models.gaussian_moments import sigmoid_moments  # noqa: E402
from cosmiq_pyro.models.linear_moments import linear_logits, linear_weights  # noqa: E402
from cosmiq_pyro.models.moment_net import moment_logits, moment_weights  # noqa: E402
from cosmiq_pyro.models.registry import PUBLISHED_DIR, resolve  # noqa: E402
from cosmiq_pyro.utils.tiling import pad_to_grid  # noqa: E402
from moments_accuracy import METRICS, scores  # noqa: E402

PASSES = ("full", "linear", "linear-bf16")
KNOTS = torch.tensor([-12.0, -8.0, -5.0, -3.0, -1.0, 1.0, 3.0, 6.0], dtype=torch.float64)
INIT = {"scalar+cap": [1.0, 2.0], "loglin+cap": [1.0, 1.0, 0.0, 2.5],
        "mtable+cap": [1.0, 1.0] + [0.0] * len(KNOTS) + [2.5]}
M_CUT = -15.0


def logit_moments(vi, images) -> dict:
    """``{pass: [(m, v) per image]}``, tempered, uncalibrated, float64 numpy."""
    net, guide = resolve(vi, None)
    net.eval()
    t = vi.temperature
    full = moment_weights(net, guide).to(None, torch.float32, torch.channels_last)
    lin = {"linear": linear_weights(net, guide), "linear-bf16": linear_weights(net, guide, var_dtype=torch.bfloat16)}
    out = {name: [] for name in PASSES}
    with torch.inference_mode():
        for image in images:
            h, w = image.shape
            x = torch.from_numpy(pad_to_grid(image))[None, None].contiguous(memory_format=torch.channels_last)
            for name in PASSES:
                m, v = moment_logits(full, x, pool="argmax") if name == "full" else linear_logits(lin[name], x)
                out[name].append(((m[0, 0, :h, :w] / t).double().numpy(), (v[0, 0, :h, :w] / t ** 2).double().numpy()))
    return out


def _interp(m, values):
    mc = m.clamp(KNOTS[0], KNOTS[-1])
    i = torch.bucketize(mc, KNOTS).clamp(1, len(KNOTS) - 1)
    x0, x1, y0, y1 = KNOTS[i - 1], KNOTS[i], values[i - 1], values[i]
    return y0 + (y1 - y0) * (mc - x0) / (x1 - x0)


def calibrated(family: str, theta, m, v):
    """``v_cal`` of ``family`` (module docstring) at parameters ``theta``."""
    lv = torch.log(v.clamp_min(1e-30))
    if family == "scalar+cap":
        u = torch.exp(theta[0] + lv)
    elif family == "loglin+cap":
        u = torch.exp(theta[0] + theta[1] * lv + theta[2] * m)
    else:
        u = torch.exp(theta[0] + theta[1] * lv + _interp(m, theta[2:2 + len(KNOTS)]))
    return u / (1 + u / torch.exp(theta[-1]))


def epistemic(m, v):
    p, a = sigmoid_moments(m, v, 16)
    return (-(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p)) - a).clamp_min(0.0)


def fit(family: str, moments, frames) -> tuple[list, float]:
    """``theta`` minimising the epistemic SSE on ``frames``, and the RMS error (all valid pixels)."""
    keep = [~f["ignore"] & (mv[0] > M_CUT) for f, mv in zip(frames, moments)]
    m, v, e = (torch.from_numpy(np.concatenate([a[k] for a, k in zip(arrs, keep)]).astype(np.float64))
               for arrs in ([mv[0] for mv in moments], [mv[1] for mv in moments], [f["epistemic"] for f in frames]))
    theta = torch.tensor(INIT[family], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                            tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = 1e6 * (epistemic(m, calibrated(family, theta, m, v)) - e).pow(2).sum()
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    with torch.no_grad():
        sse = float((epistemic(m, calibrated(family, theta, m, v)) - e).pow(2).sum())
    return theta.detach().tolist(), float(np.sqrt(sse / sum(int((~f["ignore"]).sum()) for f in frames)))


def maps(family: str, theta, moments) -> list:
    out = []
    with torch.no_grad():
        for m, v in moments:
            m, v = torch.from_numpy(m), torch.from_numpy(v)
            vc = calibrated(family, torch.tensor(theta, dtype=torch.float64), m, v)
            p, a = sigmoid_moments(m, vc, 16)
            out.append((p.numpy(), epistemic(m, vc).numpy()))
    return out


def validation_frames(vi, n: int, T: int, cache: Path) -> list[dict]:
    from moments_reference import mc_maps

    from cosmiq_pyro.data.datasets import SimulatedDataset
    recipe = json.loads((PUBLISHED_DIR / "ACS-WFC-VI.json").read_text())["recipe"]
    val = SimulatedDataset(recipe["n_val"], size=recipe["size"], seed=recipe["val_seed"], label_rule=recipe["label_rule"])
    cache.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(n):
        path = cache / f"frame_{i:02d}.npz"
        if not path.exists():
            f = val.frame(i)
            ref = mc_maps(vi, f.image, T, seed=0)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, image=f.image, mask=f.mask, ignore=f.ignore,
                                **{k: v.astype(np.float32) for k, v in ref.items()})
            tmp.rename(path)
        frames.append(dict(np.load(path)))
    return frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", type=Path, default=Path("/work/team/moments_ref"))
    p.add_argument("--val", type=Path, required=True, help="cache of the validation frames' MC maps")
    p.add_argument("--val-n", type=int, default=2)
    p.add_argument("--val-T", type=int, default=128)
    p.add_argument("--families", default=",".join(INIT))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "moments_out" / "families.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    vi = cq.load("ACS-WFC-VI")
    val = validation_frames(vi, args.val_n, args.val_T, args.val)
    study = [dict(np.load(f)) for f in sorted(glob.glob(str(args.ref / "frame_*.npz")))]
    val_mom, study_mom = logit_moments(vi, [f["image"] for f in val]), logit_moments(vi, [f["image"] for f in study])
    seeds = [scores(study, [(f["prob16"][s], f["epistemic16"][s]) for f in study]) for s in range(5)]
    rows = {"iid MC, T = 16 (mean of 5 seeds)": {k: float(np.mean([s[k] for s in seeds])) for k in METRICS},
            "iid MC, T = 16 (worst seed)": {k: (min if k == "spearman_epi" else max)(s[k] for s in seeds)
                                            for k in METRICS}}
    shipped = moment_settings(vi)  # the checkpoint's calibration of the full pass, for comparison
    shipped_maps = []
    for m, v in study_mom["full"]:
        m, vc = torch.from_numpy(m), shipped.calibrate(torch.from_numpy(v))
        shipped_maps.append((sigmoid_moments(m, vc, 16)[0].numpy(), epistemic(m, vc).numpy()))
    rows[f"full, shipped calibration (c = {shipped.variance_scale:.3g}, v_max = {shipped.variance_cap})"] = \
        scores(study, shipped_maps)
    for name in PASSES:
        for family in args.families.split(","):
            theta, val_rms = fit(family, val_mom[name], val)
            rows[f"{name}, {family}"] = {**scores(study, maps(family, theta, study_mom[name])),
                                         "theta": theta, "val_rms_epi": val_rms}
            print(f"{name}, {family}: val RMS epistemic {val_rms:.3g}, theta {np.round(theta, 3).tolist()}", flush=True)
    lines = [f"{len(study)} study frames ({', '.join(sorted({str(f['field']) + ' ' + str(f['filter']) for f in study}))}); "
             f"fitted on {len(val)} validation frames (T = {args.val_T} MC)", "",
             "| pass, calibration | RMS p (all) | RMS p (CR) | RMS epistemic (all) | RMS epistemic (CR) | "
             "Spearman epistemic | mean epistemic on CR | val RMS epistemic |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        val_cell = f"{r['val_rms_epi']:.3g}" if "val_rms_epi" in r else ""
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:.3g}" for k in METRICS) + f" | {val_cell} |")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"n_study": len(study), "n_val": len(val), "val_T": args.val_T, "rows": rows},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
