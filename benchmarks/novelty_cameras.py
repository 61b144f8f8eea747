"""Novelty across cameras (issue 22 item 5): does each shipped Bayesian model's novelty score tell
the other cameras' frames from its own, and how often does it flag its own?

For each model (``--model SPEC=CAMERA``; default the shipped ``ACS-WFC-VI``, ``WFC3-UVIS-VI`` and
``DECam-VI``) the novelty model is fitted as `adapt` fits it (`adaptation.recipe_novelty`: the
recipe's ``n_novelty`` fit frames of the model's camera at the real CR rate, seed
``novelty_fit_seed``; calibration frames, seed ``novelty_cal_seed``; every frame's ignored
pixels left out), for every threshold
quantile of ``SWEEP_Q`` and calibration-set size of ``SWEEP_N`` (the first ``n`` of the
calibration frames).  The recipe's own pair (``novelty_false_alarm``, ``n_novelty_cal``) is the
one reported in the headline tables; the checkpoint's stored novelty model is compared with it
(equal after `novelty_refit.refit_novelty`).  Each model then scores:

* held-out simulated frames of every camera (``--n-eval`` per camera, 256x256, the camera spec's
  fields / filters / exposure times, the real CR rate, seeds from ``EVAL_SEED`` >= HELD_OUT_SEED:
  disjoint from every training, validation and novelty set), with their ignore masks as
  `predict` gets them from a DQ array.  Its own camera's are the in-distribution negatives (the
  false alarms, with the exact 95 % binomial interval, `evaluation.false_alarms`); another
  camera's are positives (AUROC, share flagged);
* for a camera trained at a boosted CR rate (DECam: x50), ``--n-shift`` held-out frames at that
  rate (the training frames' rate), reported beside the real-rate ones;
* the seeing-limited (``seeing3``) and sky-subtracted (``skysub``) shifts of the first
  ``--n-shift`` frames of its camera (`evaluation.shifts`);
* astroscrappy's ``gmos.fits`` (in electrons as stored) and ccdproc's SAAO frame (overscan
  subtracted, x GAIN), `evaluation.shifts.real_ground_frames`.

The design table (`evaluation.false_alarms.threshold_design`) gives, for each pair, what a 500-frame
check is expected to show; the measured table shows what it showed.  Simulated frames are cached
in ``--cache`` (npz, keyed by camera, seed, count and CR rate).

Writes ``--out`` (default ``benchmarks/novelty_out/cameras``): ``table.md``, ``scores.csv``,
``sweep.csv``, ``design.csv``, ``scores.png``.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/novelty_cameras.py`` (full scale); ``--quick``
for a pipeline check; ``--model ACS-WFC-VI=ACS-WFC --model /path/DECam-VI.pth=DECam`` for others.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmiq_pyro.data.seeds import HELD_OUT_SEED  # noqa: E402

CAMERAS = ("ACS-WFC", "WFC3-UVIS", "DECam")
DEFAULT_MODELS = ("ACS-WFC-VI=ACS-WFC", "WFC3-UVIS-VI=WFC3-UVIS", "DECam-VI=DECam")
#: Held-out evaluation frames: frame i of every camera has seed EVAL_SEED + i (>= HELD_OUT_SEED).
EVAL_SEED = HELD_OUT_SEED + 22_500_000
#: Frames at a camera's training CR rate (DECam x50): seeds from here.
BOOSTED_SEED = HELD_OUT_SEED + 22_600_000
SWEEP_Q = (0.05, 0.04, 0.03, 0.025, 0.02)
SWEEP_N = (192, 384, 576, 768)
SHIFT_NAMES = ("seeing3", "skysub")
REAL = ("gmos", "saao")
TARGET_AUROC, TARGET_HIGH = 0.95, 0.07


# -- frames ---------------------------------------------------------------------------------------

def _cached(cache: Path, key: str, make):
    """``make()`` -> dict of arrays, stored as ``cache/key.npz`` and read back next time."""
    path = cache / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    arrays = make()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # concurrent runs write their own
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


def recipe_frames(camera, n: int, seed: int, options: dict, cache: Path):
    """Novelty fit / calibration frames exactly as `adaptation.recipe_novelty` simulates them."""
    from cosmiq_pyro.data.camera_sets import simulated_images
    key = f"recipe_{camera.name}_{seed}_{n}_x{options.get('cr_rate_multiplier')}_{options.get('size')}"

    def make():
        images, classes, ignores = simulated_images(camera, n, seed, **options)
        return {"image": np.stack(images), "ignore": np.stack(ignores), "field": np.array(classes)}
    return _cached(cache, key, make)


def held_out_frames(camera: str, n: int, seed: int, cache: Path, multiplier: float = 1.0, n_shift: int = 0):
    """``n`` held-out frames of ``camera`` (spec defaults, CR rate x ``multiplier``) and the
    seeing3 / skysub shifts of the first ``n_shift``."""
    from cosmiq_pyro.data.datasets import SimulatedDataset
    from cosmiq_pyro.evaluation.shifts import shifted_frames

    def make():
        ds = SimulatedDataset(n, seed=seed, instrument=camera, cr_rate_multiplier=multiplier)
        out = {"image": [], "ignore": [], **{s: [] for s in SHIFT_NAMES}}
        for i in range(n):
            frame = ds.frame(i)
            out["image"].append(frame.image)
            out["ignore"].append(frame.ignore)
            if i < n_shift:
                shifts = shifted_frames(frame)
                for s in SHIFT_NAMES:
                    out[s].append(shifts[s])
        return {k: np.stack(v) if v else np.zeros((0, 0, 0), np.float32) for k, v in out.items()}
    return _cached(cache, f"eval_{camera}_{seed}_{n}_x{multiplier}_s{n_shift}", make)


# -- one model ------------------------------------------------------------------------------------

class Scorer:
    """A model's bottleneck block means of any image (``cache``: stored per model and frame set)."""

    def __init__(self, result, cache: Path | None = None):
        import hashlib
        import json as _json
        from cosmiq_pyro.inference.novelty import mean_weights
        self.weights = mean_weights(result)
        self.transform = result.input_transform
        self.cache = cache
        digest = hashlib.sha256(_json.dumps(self.transform, sort_keys=True).encode())
        for part in (result.model.state_dict(), {} if result.guide is None else result.guide.state_dict()):
            for key in sorted(part):
                digest.update(key.encode())
                digest.update(part[key].detach().contiguous().numpy().tobytes())
        self.tag = digest.hexdigest()[:16]  # the weights and input transform the means depend on

    def means(self, image):
        from cosmiq_pyro.data.input_transform import model_input
        from cosmiq_pyro.inference.novelty import bottleneck_block_means
        return bottleneck_block_means(self.weights, model_input(image, self.transform))

    def items(self, name: str, frames: dict) -> list:
        """``(block_means, image, ignore)`` per frame of ``frames`` (``image``, ``ignore`` stacks)."""
        images, ignores = frames["image"], frames["ignore"]
        if self.cache is None:
            means = [self.means(im) for im in images]
        else:
            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            stacked = _cached(self.cache, f"means_{self.tag}_{slug}_{len(images)}",
                              lambda: {"means": np.stack([self.means(im).numpy() for im in images])
                                       if len(images) else np.zeros((0,))})["means"]
            means = [torch.from_numpy(m) for m in stacked]
        return list(zip(means, images, ignores))


def evaluate_model(spec: str, camera_name: str, sets: dict, args) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Scores of every set under the recipe's novelty model, the sweep table and facts."""
    import cosmiq_pyro as cq
    from cosmiq_pyro.evaluation.false_alarms import false_alarms
    from cosmiq_pyro.inference.adaptation import novelty_frame_options
    from cosmiq_pyro.inference.novelty import NoveltyModel, auroc, fit_novelty_model
    from cosmiq_pyro.inference.novelty_refit import checkpoint_recipe

    t0 = time.time()
    result = cq.load(spec)
    camera, full = checkpoint_recipe(result, camera_name)
    options = novelty_frame_options(full)
    n_cal_max = max(max(args.sweep_n), full["n_novelty_cal"])
    fit = recipe_frames(camera, full["n_novelty"], full["novelty_fit_seed"], options, args.cache)
    cal = recipe_frames(camera, n_cal_max, full["novelty_cal_seed"], options, args.cache)
    scorer = Scorer(result, args.cache)
    fit_items = scorer.items(f"fit_{full['novelty_fit_seed']}_x{options['cr_rate_multiplier']}", fit)
    cal_items = scorer.items(f"cal_{full['novelty_cal_seed']}_x{options['cr_rate_multiplier']}", cal)
    items = {name: scorer.items(f"set_{name}", s) for name, s in sets.items()}
    print(f"{spec}: features of {len(fit_items) + len(cal_items) + sum(map(len, items.values()))} frames "
          f"in {time.time() - t0:.0f} s", flush=True)

    def fitted(q, n):
        return fit_novelty_model(fit_items, cal_items[:n], classes=list(fit["field"]),
                                 read_noise_e=camera.read_noise_e, shrinkage=full["novelty_shrinkage"],
                                 false_alarm=q)

    def scores_of(model):
        return {name: np.array([model.score(m, im, ig)[0] for m, im, ig in its]) for name, its in items.items()}

    own = camera.name
    boosted = [n for n in items if n.startswith(f"{own} x")]
    sweep = []
    for q, n in product(args.sweep_q, sorted(set(args.sweep_n) | {full["n_novelty_cal"]})):
        if n > n_cal_max:
            continue
        model = fitted(q, n)
        sc = scores_of(model)
        fa = false_alarms(sc[own], model.threshold)
        row = {"model": spec, "false_alarm": q, "n_cal": n, "threshold": model.threshold, "fa_k": fa.k,
               "fa_n": fa.n, "fa_rate": fa.rate, "fa_low": fa.low, "fa_high": fa.high}
        for name in items:
            if name != own:
                row[f"flag {name}"] = float(np.mean(sc[name] > model.threshold))
        sweep.append(row)
    chosen = fitted(full["novelty_false_alarm"], full["n_novelty_cal"])
    stored = None if result.novelty is None else NoveltyModel.from_state_dict(result.novelty)
    facts = {"model": spec, "camera": own, "threshold": chosen.threshold,
             "stored_threshold": None if stored is None else stored.threshold,
             "stored_is_chosen": stored is not None and abs(stored.threshold - chosen.threshold) <= 1e-9 * abs(chosen.threshold)
             and np.allclose(stored.density.mean.numpy(), chosen.density.mean.numpy(), rtol=1e-12, atol=0),
             "false_alarm": full["novelty_false_alarm"], "n_fit": full["n_novelty"], "n_cal": full["n_novelty_cal"]}
    sc = scores_of(chosen)
    rows = [dict(model=spec, set=name, frame=i, novelty=float(v), is_novel=bool(v > chosen.threshold))
            for name, v_all in sc.items() for i, v in enumerate(v_all)]
    facts["false_alarms"] = false_alarms(sc[own], chosen.threshold)
    facts["auroc"] = {name: auroc(sc[own], sc[name]) for name in items if name != own and not name.startswith(own)
                      and name not in REAL}
    facts["auroc"].update({f"{own} {s}": auroc(sc[own], sc[f"{own} {s}"]) for s in SHIFT_NAMES
                           if f"{own} {s}" in sc})
    facts["boosted"] = {name: false_alarms(sc[name], chosen.threshold) for name in boosted}
    facts["real"] = {name: float(sc[name][0]) for name in REAL if name in sc}
    facts["check_predict"] = check_predict(result, chosen, sets[own], scorer)
    facts["written"] = None
    if args.write is not None:
        from cosmiq_pyro.inference.novelty_refit import write_novelty
        from cosmiq_pyro.models.registry import PUBLISHED, PUBLISHED_DIR
        entry = PUBLISHED.get(spec)
        source = PUBLISHED_DIR / entry if isinstance(entry, str) else Path(spec)
        if source.suffix == ".pth" and source.is_file():
            facts["written"] = write_novelty(source, chosen.state_dict(), camera, full,
                                             args.write / f"{source.stem}.pth")
            print(f"{spec}: wrote {facts['written']}", flush=True)
    print(f"{spec}: done in {time.time() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows), pd.DataFrame(sweep), facts


def check_predict(result, novelty, own_set: dict, scorer) -> float:
    """Largest |predict's novelty - this script's| over two frames of the model's own camera (the
    benchmark scores what `predict` would report, given the frame's ignore mask)."""
    import cosmiq_pyro as cq
    result.novelty = novelty.state_dict()
    worst = 0.0
    for image, ignore in zip(own_set["image"][:2], own_set["ignore"][:2]):
        pred = cq.predict(result, image, ignore=ignore, T=2, seed=0, progress=False)
        mine = novelty.score(scorer.means(image), image, ignore)[0]
        worst = max(worst, abs(pred.novelty - mine))
    return worst


# -- tables and figures ----------------------------------------------------------------------------

def _fmt_fa(fa) -> str:
    return f"{fa.k} / {fa.n} = {fa.rate:.1%} [{fa.low:.1%}, {fa.high:.1%}]"


def tables(facts: list, sweep: pd.DataFrame, design: pd.DataFrame, args) -> str:
    lines = ["## Cross-camera separation (AUROC of the novelty score: the model's own camera's held-out "
             "frames are the negatives)", "",
             "| model (camera) | " + " | ".join(CAMERAS) + " | seeing3 | skysub | threshold |",
             "|---|" + "---:|" * (len(CAMERAS) + 3)]
    for f in facts:
        cells = []
        for cam in CAMERAS:
            if cam == f["camera"]:
                cells.append("(own)")
            else:
                cells.append(f"{f['auroc'][cam]:.3f} ({f['flag'][cam]:.0%})")
        for s in SHIFT_NAMES:
            key = f"{f['camera']} {s}"
            cells.append(f"{f['auroc'][key]:.3f} ({f['flag'][key]:.0%})" if key in f["auroc"] else "-")
        lines.append(f"| {f['model']} ({f['camera']}) | " + " | ".join(cells) + f" | {f['threshold']:.3f} |")
    lines += ["", "In brackets: share of the set's frames flagged (`is_novel`).", "",
              "## False alarms on held-out in-distribution frames (real CR rate; exact 95 % interval)", "",
              f"| model | nominal rate (calibration frames) | flagged / frames [95 % CI] | upper end <= {TARGET_HIGH:.0%} | at the training CR rate |",
              "|---|---|---|---|---|"]
    for f in facts:
        fa = f["false_alarms"]
        boosted = "; ".join(f"{k}: {_fmt_fa(v)}" for k, v in f["boosted"].items()) or "-"
        lines.append(f"| {f['model']} | {f['false_alarm']:.1%} ({f['n_cal']}) | {_fmt_fa(fa)} | "
                     f"{'yes' if fa.high <= TARGET_HIGH else '**no**'} | {boosted} |")
    lines += ["", "## Real ground-based frames (novelty; flagged when above the threshold)", "",
              "| model | " + " | ".join(REAL) + " | threshold |", "|---|" + "---:|" * (len(REAL) + 1)]
    for f in facts:
        cells = [f"{f['real'][r]:.3f} ({'flagged' if f['real'][r] > f['threshold'] else '**not flagged**'})"
                 for r in REAL]
        lines.append(f"| {f['model']} | " + " | ".join(cells) + f" | {f['threshold']:.3f} |")
    lines += ["", "## Stored novelty model and predict", ""]
    for f in facts:
        stored = "none" if f["stored_threshold"] is None else f"{f['stored_threshold']:.4f}"
        lines.append(f"- {f['model']}: stored threshold {stored}, this fit {f['threshold']:.4f} "
                     f"(the stored model is this fit: {'yes' if f['stored_is_chosen'] else 'no'}); "
                     f"predict's novelty vs this script's, max |diff| over 2 frames: {f['check_predict']:.2e}")
    lines += ["", "## Threshold quantile x calibration-set size: measured", "",
              "| model | nominal | n_cal | threshold | false alarms [95 % CI] | " +
              " | ".join(c for c in sweep.columns if c.startswith("flag ")) + " |",
              "|---|---:|---:|---:|---|" + "---:|" * sum(c.startswith("flag ") for c in sweep.columns)]
    for _, r in sweep.iterrows():
        flags = " | ".join("-" if pd.isna(r[c]) else f"{r[c]:.0%}" for c in sweep.columns if c.startswith("flag "))
        lines.append(f"| {r['model']} | {r['false_alarm']:.1%} | {r['n_cal']} | {r['threshold']:.3f} | "
                     f"{r['fa_k']} / {r['fa_n']} [{r['fa_low']:.1%}, {r['fa_high']:.1%}] | {flags} |")
    lines += ["", f"## Threshold quantile x calibration-set size: expected (exchangeable scores, "
              f"{args.design_test} test frames, {args.design_draws} Monte Carlo draws)", "",
              "| nominal | n_cal | mean true rate | 95th pct of true rate | median upper end | P(upper end > 7 %) |",
              "|---:|---:|---:|---:|---:|---:|"]
    for _, r in design.iterrows():
        lines.append(f"| {r['false_alarm']:.1%} | {int(r['n_cal'])} | {r['mean_rate']:.2%} | {r['q95_rate']:.2%} | "
                     f"{r['expected_high']:.2%} | {r['p_fail']:.1%} |")
    return "\n".join(lines) + "\n"


def figure(scores: pd.DataFrame, facts: list, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(facts), figsize=(5.2 * len(facts), 4.2), constrained_layout=True, squeeze=False)
    for ax, f in zip(axes[0], facts):
        part = scores[scores.model == f["model"]]
        order = list(dict.fromkeys(part.set))
        for j, name in enumerate(order):
            v = part[part.set == name].novelty.to_numpy()
            ax.scatter(np.full(v.size, j) + np.linspace(-0.3, 0.3, v.size), v, s=3 if v.size > 50 else 14)
        ax.axhline(f["threshold"], color="k", lw=0.8, ls="--")
        ax.set_yscale("symlog", linthresh=3.0)
        ax.set_xticks(range(len(order)), order, rotation=60, ha="right")
        ax.set_title(f"{Path(f['model']).stem} (threshold {f['threshold']:.2f})")
        ax.margins(y=0.08)
        ax.set_ylabel("novelty (1 = 95th pct of calibration frames)")
    fig.savefig(out / "scores.png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, metavar="SPEC=CAMERA",
                        help="a model (published name or checkpoint) and its camera; repeat (default: "
                             + ", ".join(DEFAULT_MODELS) + ")")
    parser.add_argument("--n-eval", type=int, default=500, help="held-out frames per camera")
    parser.add_argument("--n-shift", type=int, default=64, help="shifted / boosted-rate frames per camera")
    parser.add_argument("--sweep-q", type=float, nargs="+", default=list(SWEEP_Q))
    parser.add_argument("--sweep-n", type=int, nargs="+", default=list(SWEEP_N))
    parser.add_argument("--design-draws", type=int, default=20_000)
    parser.add_argument("--design-test", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="small sets (a pipeline check)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "novelty_out" / "cameras")
    parser.add_argument("--write", type=Path, default=None,
                        help="write each checkpoint with the recipe's novelty model (the headline one) into "
                             "this directory (`novelty_refit.write_novelty`: weights unchanged, digest checked)")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "novelty_out" / "cameras" / "cache")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_eval, args.n_shift, args.sweep_n, args.design_draws = 24, 8, [16, 32], 2000
    torch.set_num_threads(1)
    from cosmiq_pyro.evaluation.false_alarms import threshold_design
    from cosmiq_pyro.evaluation.shifts import real_ground_frames
    from cosmiq_pyro.instruments import get_instrument

    t0 = time.time()
    models = [m.rsplit("=", 1) for m in (args.model or DEFAULT_MODELS)]
    sets = {}
    for cam in CAMERAS:
        frames = held_out_frames(cam, args.n_eval, EVAL_SEED, args.cache, n_shift=args.n_shift)
        sets[cam] = {"image": frames["image"], "ignore": frames["ignore"]}
        for s in SHIFT_NAMES:
            sets[f"{cam} {s}"] = {"image": frames[s], "ignore": frames["ignore"][:len(frames[s])]}
        multiplier = float(get_instrument(cam).simulation.cr_rate_multiplier)
        if multiplier != 1.0:
            boosted = held_out_frames(cam, args.n_shift, BOOSTED_SEED, args.cache, multiplier=multiplier)
            sets[f"{cam} x{multiplier:g} CR rate"] = {"image": boosted["image"], "ignore": boosted["ignore"]}
        print(f"{cam}: frames ready at {time.time() - t0:.0f} s", flush=True)
    for name, image in real_ground_frames().items():
        sets[name] = {"image": image[None], "ignore": np.zeros((1,) + image.shape, bool)}

    all_scores, all_sweeps, facts = [], [], []
    for spec, cam in models:
        own_sets = {k: v for k, v in sets.items() if not any(k.startswith(f"{c} ") for c in CAMERAS)
                    or k.startswith(f"{cam} ")}
        scores, sweep, f = evaluate_model(spec, cam, own_sets, args)
        f["flag"] = {name: float(scores[scores.set == name].is_novel.mean()) for name in own_sets}
        all_scores.append(scores)
        all_sweeps.append(sweep)
        facts.append(f)
    design = pd.DataFrame([{"false_alarm": q, "n_cal": n,
                            **threshold_design(n, q, n_test=args.design_test, limit=TARGET_HIGH,
                                               draws=args.design_draws)}
                           for q, n in product(args.sweep_q, sorted(set(args.sweep_n)))])
    scores, sweep = pd.concat(all_scores), pd.concat(all_sweeps)
    args.out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(args.out / "scores.csv", index=False)
    sweep.to_csv(args.out / "sweep.csv", index=False)
    design.to_csv(args.out / "design.csv", index=False)
    header = (f"{args.n_eval} held-out frames per camera (seeds {EVAL_SEED}+i), {args.n_shift} shifted / "
              f"boosted-rate frames; models: " + ", ".join(f"{s} ({c})" for s, c in models) + "\n\n")
    text = header + tables(facts, sweep, design, args)
    (args.out / "table.md").write_text(text)
    figure(scores, facts, args.out)
    print(text)
    print(f"total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
