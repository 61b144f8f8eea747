"""Fit the moment pass's variance scale of a Bayesian model against T-draw MC on its own
validation frames (issue 23, item 2b; `cosmiq_pyro.inference.moments_calibration`).

Frames: the first ``--n`` frames of the model's own validation set, never the held-out frames of
an accuracy study: for the shipped ``ACS-WFC-VI`` its recipe (``ACS-WFC-VI.json``: ``val_seed``,
size, label rule); for a model made by `adapt` (``--model`` a checkpoint or name whose model card
holds the recipe) the same validation frames `adapt` made for its camera
(`cosmiq_pyro.data.camera_sets.simulated_sets` with the card's recipe: camera, fields, filters,
exposure times, label rule, CR-rate multiplier; a model with a prior-shift correction is fitted
without it, at the rate of those frames).  The fitted section is written as JSON (``--out``)
and into a checkpoint as its ``"moments"`` section (`cosmiq_pyro.io.checkpoint.update_sections`:
weights bit for bit): ``--write-to PATH`` writes a copy of the model with it, ``--write`` the
model's own file (the shipped one for a published name); ``--from-json`` writes the section of an
earlier fit without refitting.

    python benchmarks/moments_calibrate.py --n 6 --T 128 --out benchmarks/moments_out/calibration.json
    python benchmarks/moments_calibrate.py --from-json --write   # after a merge rewrote the shipped file
    python benchmarks/moments_calibrate.py --model /work/train/DECam-VI.pth --n 6 --T 128 \\
        --out DECam-VI.moments.json --write-to DECam-VI.pth
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.data.camera_sets import resolve_camera, simulated_sets  # noqa: E402
from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.inference.adaptation import CAMERA_KEYS  # noqa: E402
from cosmiq_pyro.inference.moments import SECTION  # noqa: E402
from cosmiq_pyro.inference.moments_calibration import fit_variance_scale  # noqa: E402
from cosmiq_pyro.inference.prior_shift import SECTION as PRIOR_SHIFT, with_prior_shift  # noqa: E402


def validation_frames(model, name: str) -> tuple[SimulatedDataset, str]:
    """The model's own validation Dataset and a description of it."""
    card = model.card or {}
    if card.get("recipe"):  # made by adapt: the frames adapt validated on
        recipe = card["recipe"]
        camera = resolve_camera(card["instrument"]["name"])
        _, val = simulated_sets(camera, n_train=1, n_val=recipe["n_val"], train_seed=recipe["train_seed"],
                                val_seed=recipe["val_seed"], size=recipe["size"],
                                **{k: recipe[k] for k in CAMERA_KEYS})
        return val, f"{name} validation frames ({camera.name}, val_seed {recipe['val_seed']}, " \
                    f"x{recipe['cr_rate_multiplier']:g} CR rate)"
    recipe = json.loads(Path(model.weights_file).with_suffix(".json").read_text())["recipe"]
    val = SimulatedDataset(recipe["n_val"], size=recipe["size"], seed=recipe["val_seed"], label_rule=recipe["label_rule"])
    return val, f"{name} validation frames (val_seed {recipe['val_seed']})"


def figure(report: dict, section: dict, path: Path) -> None:
    """RMS error of the epistemic map (nats) against ``c``, one curve per cap ``v_max``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for cap, rms in zip(report["caps"], report["rms_epistemic"]):
        ax.plot(report["grid"], rms, label="no cap" if cap is None else f"v_max = {cap:g}",
                lw=2.0 if cap == section["variance_cap"] else 1.0)
    ax.axvline(section["variance_scale"], color="k", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("variance scale c")
    ax.set_ylabel("RMS error of the epistemic map vs MC (nats)")
    ax.set_title(f"fitted c = {section['variance_scale']:.3g}, v_max = {section['variance_cap']} "
                 f"({report['n_frames']} frames, T = {report['T']})", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ACS-WFC-VI", help="published name or checkpoint")
    p.add_argument("--n", type=int, default=6, help="validation frames")
    p.add_argument("--T", type=int, default=128, help="MC draws of the reference")
    p.add_argument("--pool", default="argmax")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "moments_out" / "calibration.json")
    p.add_argument("--write", action="store_true", help="store the section in the model's own checkpoint file")
    p.add_argument("--write-to", type=Path, default=None, metavar="PATH",
                   help="write a copy of the model's checkpoint with the section to PATH")
    p.add_argument("--figure", type=Path, default=None, metavar="PNG", help="plot the objective against c")
    p.add_argument("--from-json", action="store_true",
                   help="write the section already fitted in --out (no refit); with --write or --write-to")
    args = p.parse_args(argv)
    from cosmiq_pyro.io.checkpoint import update_sections

    model = cq.load(args.model)
    targets = ([Path(model.weights_file)] if args.write else []) + ([args.write_to] if args.write_to else [])
    if args.from_json:
        if not targets:
            p.error("--from-json needs --write or --write-to")
        section = json.loads(args.out.read_text())["section"]
        for target in targets:
            update_sections(model.weights_file, {SECTION: section}, out=target)
            print("written", section, "to", target)
        return 0
    torch.set_num_threads(args.threads)
    started = time.time()
    name = Path(str(args.model)).stem
    val, described = validation_frames(model, name)
    shift = model.sections.get(PRIOR_SHIFT)
    if shift is not None:  # the validation frames are at the training rate: fit there (no shift)
        with_prior_shift(model, shift["train_cr_rate_multiplier"], shift["train_cr_rate_multiplier"])
    frames = [val.frame(i) for i in range(args.n)]
    settings, report = fit_variance_scale(model, [f.image for f in frames], [f.ignore for f in frames],
                                          T=args.T, seed=0, pool=args.pool)
    section = {**settings.to_section(), "fitted_on": f"{described} 0..{args.n - 1}, T={args.T} MC, seed 0"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"section": section, "report": report,
                                    "seconds": round(time.time() - started)}, indent=1) + "\n")
    rms = report["rms_epistemic"]
    best = min(min(row) for row in rms)
    print(f"variance_scale = {settings.variance_scale:.4g}, variance_cap = {settings.variance_cap} "
          f"(RMS epistemic {best:.3g} nats; c = 1 without cap: {rms[0][0]:.3g}; best without cap: "
          f"{min(rms[0]):.3g}), {time.time() - started:.0f} s")
    if args.figure is not None:
        figure(report, section, args.figure)
    for target in targets:
        update_sections(model.weights_file, {SECTION: section}, out=target)
        print("written to", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
