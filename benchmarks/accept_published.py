"""Acceptance of the published ``ACS-WFC-VI`` model (issue 13, item 6) on held-out simulated frames.

Predictors, all on the same frames (`cosmiq_pyro.evaluation.study.compare`):

* ``ACS-WFC-VI``: the shipped Bayesian model, T = 16 posterior draws, its stored temperature;
* ``ACS-WFC-VI T=1``: the same without the temperature (``--no-untempered`` skips it);
* ``ACS-WFC-VI moments``: the sampling-free moment pass (its stored temperature and calibration);
* ``deepCR ACS-WFC``: deepCR's published weights in our deterministic twin (the VI model's prior
  centre and initial means; its output equals deepCR's ``clean(binary=False)`` to 3e-6);
* ``twin (VI means)``: the deterministic twin holding the VI posterior means, with its own
  temperature fitted on the VI model's validation frames.

Frames: ``--n`` (default 300) 256x256 frames simulated with dataset seed
``HELD_OUT_SEED + 13_000`` (frame seeds >= 2**32, disjoint from every training frame), fields
EX/GC/GAL x filters F435W/F606W/F814W, 100-1200 s, defects on.  Truth: AstroDrizzle driz_cr labels
(the table the targets refer to) and, beside them, the 1-sigma labels (CR charge > 1 sigma).  The
maps are computed once per frame and predictor and reused for both label sets.

Extra rows beyond `compare`'s table and the pass / fail of issue 22's criteria come from the
general camera acceptance, `benchmarks/accept_camera.py` (`evaluate_set`, `criteria`): Brier /
NLL / ECE on candidate pixels (truth CR or p > 0.01; per predictor, and on the union of every
predictor's candidates, one common pixel set), the fraction of bright CR cores (driz_cr CR pixels
with CR charge > 50 sigma of the pixel's noise without the CR) at p >= 0.99.  The moment pass
(``ACS-WFC-VI moments``, the model's stored calibration) runs beside the MC rows.  Then
astroscrappy's GMOS frame (both known CRs at p > 0.5, no other group of > 20 flagged pixels,
8-connected), read in electrons as stored: runs before 2026-12-07 multiplied it by 1.933
(astroscrappy's test gain; `evaluation.shifts.real_ground_frames` still does), a 1.933x too
bright frame.  ``--gmos-only`` reruns only that table.

    python benchmarks/accept_published.py --out benchmarks/published_acceptance
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from accept_camera import (Cached, criteria, evaluate_set, gmos_electrons, gmos_row,  # noqa: E402,F401
                           markdown_criteria, run_info)

from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.data.seeds import HELD_OUT_SEED  # noqa: E402
from cosmiq_pyro.evaluation.peers import ModelPredictor  # noqa: E402
from cosmiq_pyro.inference.predictive import predict  # noqa: E402
from cosmiq_pyro.inference.temperature import calibrate  # noqa: E402
from cosmiq_pyro.models.guides import guide_locs  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402
from cosmiq_pyro.models.results import FitResult  # noqa: E402
from cosmiq_pyro.models.unet import UNet2Sigmoid  # noqa: E402

HELD_OUT = HELD_OUT_SEED + 13_000


def twin_of_means(vi: FitResult) -> UNet2Sigmoid:
    """The deterministic twin holding the VI posterior means (and the VI norm layers)."""
    net = vi.model
    twin = UNet2Sigmoid(n_channels=net.n_channels, n_classes=net.n_classes, hidden=net.hidden, norm=net.norm)
    state = {k: v for k, v in net.state_dict().items() if ".prior_" not in k and not k.endswith("prior_sd")}
    state.update(guide_locs(vi.guide, net.weight_sites))
    twin.load_state_dict(state)
    return twin.eval()


def datasets(n: int):
    common = dict(size=256, seed=HELD_OUT, defects=("hot_pixels", "bad_columns", "cte_trails"))
    return SimulatedDataset(n, label_rule="drizcr", **common), SimulatedDataset(n, label_rule="sigma", **common)


def gmos_check(models: dict) -> pd.DataFrame:
    """`gmos_row` of each ``{name: (model, method, T)}`` on astroscrappy's frame (electrons)."""
    gmos = gmos_electrons()
    return pd.DataFrame([gmos_row(name, predict(model, gmos, method=method, T=T, seed=0, progress=False).prob)
                         for name, (model, method, T) in models.items()])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ACS-WFC-VI", help="published name or checkpoint of the VI model")
    p.add_argument("--n", type=int, default=300, help="held-out frames")
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-untempered", action="store_true", help="skip the VI model without its temperature")
    p.add_argument("--gmos-only", action="store_true", help="only the gmos.fits table")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "published_acceptance")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    vi = load_model(args.model)
    recipe = json.loads((Path(vi.weights_file).with_suffix(".json")).read_text())["recipe"]
    val = SimulatedDataset(recipe["n_val"], size=recipe["size"], seed=recipe["val_seed"],
                           label_rule=recipe["label_rule"])
    twin = FitResult(model=twin_of_means(vi))
    calibrate(twin, val)
    deepcr = load_model("ACS-WFC")
    vi_name = f"ACS-WFC-VI T={vi.temperature:.3f}"
    twin_name = f"twin (VI means) T={twin.temperature:.3f}"
    args.out.mkdir(parents=True, exist_ok=True)
    gm = gmos_check({vi_name: (vi, "mc", args.T), "ACS-WFC-VI moments": (vi, "moments", None),
                     "deepCR ACS-WFC": (deepcr, None, None), twin_name: (twin, None, None)})
    gm.to_csv(args.out / "gmos.csv", index=False)
    print("\n== gmos.fits (electrons as stored)\n" + gm.to_string(index=False))
    if args.gmos_only:
        return 0
    predictors = {vi_name: Cached(ModelPredictor(vi, T=args.T)),
                  "ACS-WFC-VI moments": Cached(ModelPredictor(vi, method="moments"))}
    if not args.no_untempered:
        predictors["ACS-WFC-VI T=1"] = Cached(ModelPredictor(FitResult(model=vi.model, guide=vi.guide), T=args.T))
    predictors["deepCR ACS-WFC"] = Cached(ModelPredictor(deepcr))
    predictors[twin_name] = Cached(ModelPredictor(twin))
    predictors["twin (VI means) T=1"] = Cached(ModelPredictor(FitResult(model=twin.model)))
    drizcr, sigma = datasets(args.n)
    verdicts = []
    for label, ds in (("drizcr", drizcr), ("sigma", sigma)):
        summary = evaluate_set(predictors, ds, args.out / label, args.T, f"labels: {label}")
        verdicts.append(criteria(summary, [vi_name, "ACS-WFC-VI moments"], "deepCR ACS-WFC", label))
    verdict = pd.concat(verdicts, ignore_index=True)
    (args.out / "criteria.md").write_text(markdown_criteria(verdict))
    print("\n== criteria (issue 22, item 2)\n" + verdict.to_string(index=False))
    (args.out / "run.json").write_text(json.dumps({"model": args.model, "n_frames": args.n, "T": args.T,
                                                   "held_out_seed": HELD_OUT, "twin_temperature": twin.temperature,
                                                   "vi_temperature": vi.temperature, **run_info(),
                                                   "seconds": round(time.time() - started)}, indent=1) + "\n")
    print(f"\n{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
