"""Novelty study (issue 15): which score tells frames unlike the training data from held-out ones?

Candidates, each a frame-level score (higher = more novel):

* ``epistemic`` -- mean epistemic map (mutual information, nats) of `predict` with a VI model;
* ``features``  -- mean over 64x64 px blocks of log Mahalanobis distance of the network's
  bottleneck features to the nearest of three Gaussians, one per simulated field type (EX, GC,
  GAL) (`cosmiq_pyro.inference.novelty`), deepCR's ACS-WFC weights;
* ``features_1g`` -- the same with a single Gaussian;
* ``noise``     -- the noise deficit: measured noise below Poisson + read noise
  (`novelty.noise_excess`);
* ``combined``  -- the `NoveltyModel` novelty (max of features and noise, each on its
  calibration scale); ``is_novel`` at its stored 5 % false-alarm threshold.

Sets (all simulated 256x256 ACS/WFC frames, `simulate.frame_spec`, disjoint seeds): fit (192
frames: the Gaussians), calibration (192: scales and threshold), evaluation (64: the
in-distribution negatives; 256 more for the false-alarm rate alone; the epistemic candidate, at
~1 s a frame, sees the first 32 of each set and 48 calibration frames), and from the evaluation
frames the shifts of `cosmiq_pyro.evaluation.shifts`: ``adu`` (image / gain 2 passed as
electrons), ``seeing3`` (the CR-free noiseless image blurred to 3x the PSF FWHM, CRs, Poisson
and read noise re-added), ``readnoise5`` (read noise x5), ``e_per_s`` (divided by the exposure
time, as drizzled ``_drz`` products are), ``skysub`` (sky subtracted).  Real frames:
astroscrappy's GMOS-S cutout (electrons as stored) and ccdproc's SAAO frame (overscan median
subtracted, trimmed to TRIMSEC, x 1.9 e-/ADU).

Writes ``benchmarks/novelty_out/`` (table.md, scores.csv, figures) and the fitted novelty model
of deepCR's ACS-WFC weights to ``cosmiq_pyro/models/published/ACS-WFC.novelty.pt``.  With
``--model ACS-WFC-VI`` (any published name or checkpoint) the same for that model: outputs in
``benchmarks/novelty_out/<name>/``, its novelty model inside the checkpoint (the ``"novelty"``
section; a published checkpoint is rewritten in place, weights unchanged bit for bit; a checkpoint
path is copied into that directory with it), see `publish`.

Run: ``.venv/bin/python benchmarks/novelty_study.py [--quick] [--vi PATH]`` (one torch thread);
``--overhead`` times `predict` with and without the novelty score (``overhead.md``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cosmiq_pyro.evaluation.shifts import SHIFTS

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "novelty_out"
PUBLISHED_DIR = ROOT / "cosmiq_pyro" / "models" / "published"
FIT_SEED, CAL_SEED, EVAL_SEED, EXTRA_SEED = 7_100_001, 7_100_002, 7_100_003, 7_100_004
REAL = ("gmos", "saao")


def simulated(seed: int, n: int, size: int = 256):
    from cosmiq_pyro.data.simulate import frame_spec, simulate_frame
    return [simulate_frame(size, **frame_spec(i, seed)) for i in range(n)]


def load_vi(path):
    import cosmiq_pyro as cq
    if path:
        return cq.load(path), str(path)
    try:
        return cq.load("ACS-WFC-VI"), "ACS-WFC-VI (shipped)"
    except (ValueError, FileNotFoundError, TypeError, AttributeError):
        return None, None


def short_vi(cache: Path):
    """A VI posterior whose means start at deepCR's ACS-WFC weights: 2 SVI epochs on 96 simulated
    128x128 frames, init_scale 1e-2, exact per-pixel ELBO (used when the shipped model is absent)."""
    import cosmiq_pyro as cq
    from cosmiq_pyro.data.datasets import SimulatedDataset
    from cosmiq_pyro.models.bayesian import UNet2SigmoidVI
    from cosmiq_pyro.models.unet import UNet2Sigmoid
    if cache.is_file():
        return cq.load(cache)
    vi = cq.fit_svi(UNet2SigmoidVI(hidden=32), SimulatedDataset(96, size=128, seed=7_000_010), epochs=2,
                    lr=5e-3, batch_size=8, init_from=UNet2Sigmoid.from_deepcr("ACS-WFC"), init_scale=1e-2,
                    kl_beta=1 / 128 ** 2, phase0_epochs=0, progress=False, seed=0)
    cq.save(cache, vi)
    return vi


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sets (a pipeline check)")
    parser.add_argument("--vi", default=None, help="VI checkpoint for the epistemic candidate")
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--no-publish", action="store_true", help="do not write the package-data model")
    parser.add_argument("--overhead", action="store_true", help="only time predict with / without novelty")
    parser.add_argument("--model", default="ACS-WFC",
                        help="model whose novelty model is fitted (published name or checkpoint; default "
                             "ACS-WFC); stored inside a cosmiq_pyro checkpoint (a published one in place), beside "
                             "deepCR's weights as models/published/<name>.novelty.pt")
    parser.add_argument("--no-epistemic", action="store_true", help="skip the (slow) epistemic candidate")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default benchmarks/novelty_out, or a subdirectory named "
                             "after --model)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    global OUT
    if args.out is not None:
        OUT = args.out
    elif args.model != "ACS-WFC":
        OUT = OUT / Path(args.model).stem
    if args.overhead:
        print(overhead())
        return 0
    from cosmiq_pyro.evaluation.shifts import real_ground_frames, shifted_frames
    from cosmiq_pyro.inference.novelty import auroc, bottleneck_block_means, fit_novelty_model, mean_weights
    from cosmiq_pyro.inference.predictive import predict
    import cosmiq_pyro as cq
    from cosmiq_pyro.models.registry import PUBLISHED

    n_fit, n_cal, n_eval = (12, 8, 6) if args.quick else (192, 192, 64)
    n_epistemic = {"calibration": n_cal // 4, "other": n_eval // 2}
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    fit_frames = simulated(FIT_SEED, n_fit)
    cal_frames = simulated(CAL_SEED, n_cal)
    eval_frames = simulated(EVAL_SEED, n_eval)
    sets = {"fit": [f.image for f in fit_frames], "calibration": [f.image for f in cal_frames],
            "in-distribution": [f.image for f in eval_frames]}
    shifts = [shifted_frames(f) for f in eval_frames]
    for name in SHIFTS:
        sets[name] = [s[name] for s in shifts]
    for name, image in real_ground_frames().items():
        sets[name] = [image]
    print(f"frames simulated in {time.time() - t0:.0f} s", flush=True)

    weights = mean_weights(cq.load(args.model))
    means = {k: [bottleneck_block_means(weights, img) for img in v] for k, v in sets.items()}
    fields = [f.meta["field"] for f in fit_frames]
    model = fit_novelty_model(zip(means["fit"], sets["fit"]), zip(means["calibration"], sets["calibration"]),
                        classes=fields)
    single = fit_novelty_model(zip(means["fit"], sets["fit"]), zip(means["calibration"], sets["calibration"]))
    print(f"features + fit in {time.time() - t0:.0f} s; threshold {model.threshold:.3f}", flush=True)

    vi, vi_name = (None, "not run") if args.no_epistemic else load_vi(args.vi)
    if vi is None and not args.no_epistemic:
        vi, vi_name = short_vi(OUT / "vi_short.pth"), "short SVI fit from deepCR ACS-WFC (2 epochs)"
    rows = []
    for name, images in sets.items():
        if name == "fit":
            continue
        for i, image in enumerate(images):
            novelty, parts, block_map = model.score(means[name][i], image)
            epistemic = np.nan
            if vi is not None and i < n_epistemic.get(name, n_epistemic["other"]):
                epistemic = float(predict(vi, image, T=args.T, seed=0, progress=False).epistemic.mean())
            rows.append(dict(set=name, frame=i, epistemic=epistemic, features=parts["features"],
                             features_1g=single.score(means[name][i], image)[1]["features"],
                             noise=parts["noise"], combined=novelty,
                             is_novel=novelty > model.threshold, block_max=float(block_map.max())))
        print(f"{name}: scored at {time.time() - t0:.0f} s", flush=True)
    scores = pd.DataFrame(rows)
    scores.to_csv(OUT / "scores.csv", index=False)

    # epistemic threshold for a 5 % false-alarm rate, as for the others
    cal = scores[scores.set == "calibration"]
    eps_threshold = float(np.nanquantile(cal.epistemic, 0.95)) if cal.epistemic.notna().any() else np.nan
    neg = scores[scores.set == "in-distribution"]
    lines = [f"VI model for `epistemic`: {vi_name}, T = {args.T}. Features: {args.model}'s weights (posterior means for a VI model). "
             f"{n_fit} fit / {n_cal} calibration / {n_eval} in-distribution frames (256x256).", "",
             "| set | n | AUROC epistemic | AUROC features, one Gaussian | AUROC features | AUROC noise | AUROC combined | flagged (is_novel) | flagged by epistemic at its 5 % threshold |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in list(SHIFTS) + list(REAL):
        pos = scores[scores.set == name]
        aucs = [auroc(neg[c].dropna(), pos[c].dropna()) if pos[c].notna().any() else np.nan
                for c in ("epistemic", "features_1g", "features", "noise", "combined")]
        lines.append(f"| {name} | {len(pos)} | " + " | ".join(f"{a:.3f}" for a in aucs)
                     + f" | {pos.is_novel.mean():.0%} | {(pos.epistemic.dropna() > eps_threshold).mean():.0%} |")
    n_extra = 16 if args.quick else 256
    extra = [model.score(bottleneck_block_means(weights, f.image), f.image)[0] > model.threshold
             for f in simulated(EXTRA_SEED, n_extra)]
    lines += ["", f"False alarms on {n_extra} more in-distribution frames (novelty only): {np.mean(extra):.1%}."]
    lines += ["", f"False alarms on the {n_eval} in-distribution frames: is_novel {neg.is_novel.mean():.1%} "
              f"(threshold {model.threshold:.3f} from the calibration frames); epistemic "
              f"{(neg.epistemic.dropna() > eps_threshold).mean():.1%} (of {neg.epistemic.notna().sum()}).",
              f"Mean epistemic (nats): in-distribution {neg.epistemic.mean():.3g}, "
              + ", ".join(f"{n} {scores[scores.set == n].epistemic.mean():.3g}" for n in REAL) + "."]
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    figures(scores, model, sets, means)
    if not args.quick and not args.no_publish:
        print(f"wrote {publish(args.model, model)}")
    print(f"total {time.time() - t0:.0f} s")
    return 0


def publish(spec: str, model) -> Path:
    """Store the fitted novelty model with the model it belongs to.

    A cosmiq_pyro checkpoint carries it inside (its ``"novelty"`` section, weights unchanged bit
    for bit: `io.checkpoint.update_sections`): a published checkpoint is rewritten in place, a
    checkpoint path is copied to ``OUT/<stem>.pth`` with it.  deepCR's weights (``ACS-WFC``) are
    not our file: their novelty model goes beside them, ``models/published/<name>.novelty.pt``.
    """
    from cosmiq_pyro.io.atomic import atomic_open
    from cosmiq_pyro.io.checkpoint import update_sections
    from cosmiq_pyro.models.registry import PUBLISHED

    entry = PUBLISHED.get(spec)
    if isinstance(entry, str):
        return update_sections(PUBLISHED_DIR / entry, {"novelty": model.state_dict()})
    if entry is None and Path(spec).suffix == ".pth":
        return update_sections(spec, {"novelty": model.state_dict()}, out=OUT / Path(spec).name)
    target = PUBLISHED_DIR / f"{Path(spec).stem}.novelty.pt"
    with atomic_open(target) as fh:
        torch.save(model.state_dict(), fh)
    return target


def overhead(repeats: int = 7) -> str:
    """Time of `predict` with the novelty score over the time without, measured side by side
    (A B A B ..., the median of the paired ratios), for the twin and the VI model."""
    import cosmiq_pyro as cq
    from cosmiq_pyro.data.simulate import simulate_frame
    from cosmiq_pyro.inference.predictive import predict
    twin = cq.load("ACS-WFC")
    vi = short_vi(OUT / "vi_short.pth")
    vi.novelty = twin.novelty  # same architecture; only the timing matters here
    lines = ["| model | image | T | with novelty (s) | without (s) | ratio (median of pairs) |", "|---|---|---:|---:|---:|---:|"]
    for result, side, T in ((twin, 256, 1), (twin, 1024, 1), (vi, 256, 16)):
        image = simulate_frame(side, seed=11).image
        predict(result, image, T=T, progress=False)  # warm-up
        pairs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            predict(result, image, T=T, progress=False)
            t1 = time.perf_counter()
            predict(result, image, T=T, progress=False, novelty=False)
            t2 = time.perf_counter()
            pairs.append((t1 - t0, t2 - t1))
        with_, without = np.median([p[0] for p in pairs]), np.median([p[1] for p in pairs])
        ratio = np.median([p[0] / p[1] for p in pairs])
        kind = "deepCR ACS-WFC twin" if T == 1 else "VI (short fit)"
        lines.append(f"| {kind} | {side}x{side} | {T} | {with_:.3f} | {without:.3f} | {ratio:.3f} |")
    text = "\n".join(lines) + "\n"
    (OUT / "overhead.md").write_text(text)
    return text


def figures(scores, model, sets, means):
    score_figure(scores, model.threshold)
    map_figure(model, sets, means)


def score_figure(scores, threshold: float):
    """``scores.png``: every candidate's frame scores per set (``threshold``: is_novel's)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    order = ["calibration", "in-distribution"] + list(SHIFTS) + list(REAL)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), constrained_layout=True)
    for ax, col in zip(axes, ("epistemic", "features", "noise", "combined")):
        for j, name in enumerate(order):
            v = scores[scores.set == name][col].dropna().to_numpy()
            ax.scatter(np.full(v.size, j) + np.linspace(-0.2, 0.2, v.size), v, s=8)
        if col == "combined":
            ax.axhline(threshold, color="k", lw=0.8, ls="--")
        if col == "epistemic" and scores[col].notna().any():
            ax.set_yscale("log")
        elif col in ("noise", "combined"):
            ax.set_yscale("symlog", linthresh=3.0)  # e-/s frames score ~30
        ax.set_xticks(range(len(order)), order, rotation=60, ha="right")
        ax.set_title(col)
    fig.savefig(OUT / "scores.png", dpi=110)
    plt.close(fig)


def map_figure(model, sets, means):
    """``maps.png``: one frame of each kind and its novelty map."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["in-distribution", "adu", "seeing3", "readnoise5", "gmos", "saao"]
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 6.4), constrained_layout=True)
    for j, name in enumerate(names):
        image = sets[name][0]
        _, _, block_map = model.score(means[name][0], image)
        lo, hi = np.percentile(image, [1, 99.5])
        axes[0, j].imshow(image, origin="lower", cmap="gray", vmin=lo, vmax=hi)
        axes[0, j].set_title(name)
        im = axes[1, j].imshow(model.expand(block_map, image.shape), origin="lower", cmap="magma", vmin=0,
                               vmax=max(3.0, float(block_map.max())))
        fig.colorbar(im, ax=axes[1, j], shrink=0.8)
    axes[1, 0].set_ylabel("novelty map (1 = 95th pct of\nin-distribution blocks)")
    fig.savefig(OUT / "maps.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
