"""Fit the moment pass's variance scale of the shipped ``ACS-WFC-VI`` against T-draw MC on its
validation frames (issue 23, item 2b; `cosmiq_pyro.inference.moments_calibration`).

Frames: the first ``--n`` frames of the model's own validation set (the recipe's ``val_seed``,
size and label rule, ACS-WFC-VI.json): never the held-out frames of the accuracy study.  The
fitted section is written as JSON (``--out``) and, with ``--write``, into the shipped checkpoint
as its ``"moments"`` section (`cosmiq_pyro.io.checkpoint.update_sections`: weights bit for bit);
``--from-json`` writes the section of an earlier fit without refitting.

    python benchmarks/moments_calibrate.py --n 6 --T 128 --out benchmarks/moments_out/calibration.json
    python benchmarks/moments_calibrate.py --from-json   # after a merge rewrote the shipped file
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
from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.inference.moments import SECTION  # noqa: E402
from cosmiq_pyro.inference.moments_calibration import fit_variance_scale  # noqa: E402
from cosmiq_pyro.models.registry import PUBLISHED_DIR  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=6, help="validation frames")
    p.add_argument("--T", type=int, default=128, help="MC draws of the reference")
    p.add_argument("--pool", default="argmax")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "moments_out" / "calibration.json")
    p.add_argument("--write", action="store_true", help="store the section in the shipped checkpoint")
    p.add_argument("--from-json", action="store_true",
                   help="write the section already fitted in --out into the shipped checkpoint (no refit)")
    args = p.parse_args(argv)
    if args.from_json:
        from cosmiq_pyro.io.checkpoint import update_sections
        section = json.loads(args.out.read_text())["section"]
        update_sections(PUBLISHED_DIR / "ACS-WFC-VI.pth", {SECTION: section})
        print("written", section, "to", PUBLISHED_DIR / "ACS-WFC-VI.pth")
        return 0
    torch.set_num_threads(args.threads)
    started = time.time()
    vi = cq.load("ACS-WFC-VI")
    recipe = json.loads((PUBLISHED_DIR / "ACS-WFC-VI.json").read_text())["recipe"]
    val = SimulatedDataset(recipe["n_val"], size=recipe["size"], seed=recipe["val_seed"], label_rule=recipe["label_rule"])
    frames = [val.frame(i) for i in range(args.n)]
    settings, report = fit_variance_scale(vi, [f.image for f in frames], [f.ignore for f in frames],
                                          T=args.T, seed=0, pool=args.pool)
    section = {**settings.to_section(), "fitted_on": f"ACS-WFC-VI validation frames 0..{args.n - 1} "
               f"(val_seed {recipe['val_seed']}), T={args.T} MC, seed 0"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"section": section, "report": report,
                                    "seconds": round(time.time() - started)}, indent=1) + "\n")
    rms = report["rms_epistemic"]
    best = min(min(row) for row in rms)
    print(f"variance_scale = {settings.variance_scale:.4g}, variance_cap = {settings.variance_cap} "
          f"(RMS epistemic {best:.3g} nats; c = 1 without cap: {rms[0][0]:.3g}; best without cap: "
          f"{min(rms[0]):.3g}), {time.time() - started:.0f} s")
    if args.write:
        from cosmiq_pyro.io.checkpoint import update_sections
        update_sections(PUBLISHED_DIR / "ACS-WFC-VI.pth", {SECTION: section})
        print("written to", PUBLISHED_DIR / "ACS-WFC-VI.pth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
