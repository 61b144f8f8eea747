"""What ``model="auto"`` costs per frame: the header rule, the novelty rule, against predicting.

Run::

    python benchmarks/bench_automodel.py [--sides 512,1024] [--repeats 3]

One torch thread.  Frames: simulated ACS/WFC-like frames (`simulate.simulate_frame`, field EX) of
each side, given to the rules without a camera header (so the novelty rule decides) and, for
the header rule, with an ACS/WFC primary header.  Measured, interleaved over ``--repeats``:

* loading every candidate model once in this process (`modelcache.cached_model`, cold);
* the header rule (`automodel.camera_choice`: spec match + cached model);
* the novelty rule (`automodel.novelty_choice`: one encoder pass of each candidate's
  posterior-mean weights over the frame, `inference.novelty.image_novelty`);
* `predict` with the chosen model, the default method (Monte Carlo, T = 16), on the smallest
  side, for the ratio (the novelty rule's cost per pixel does not depend on the side).

Prints one markdown table with the date (UTC), commit, load average before and after.
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved, load_average  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="512,1024", help="frame sides in px, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sides = [int(s) for s in args.sides.split(",")]

    import torch
    from astropy.io import fits

    from cosmiq_pyro.app.automodel import camera_choice, candidate_models, novelty_choice
    from cosmiq_pyro.app.modelcache import cached_model
    from cosmiq_pyro.data.simulate import simulate_frame
    from cosmiq_pyro.inference.predictive import predict

    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    load_before = load_average()
    start = time.perf_counter()
    for name in candidate_models():
        cached_model(name)
    load_s = time.perf_counter() - start
    header = fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC"})
    frames = {side: simulate_frame(side, field="EX", seed=side).image for side in sides}
    cases = {"header rule": lambda: camera_choice(header)}
    for side, image in frames.items():
        cases[f"novelty rule {side}"] = lambda image=image: novelty_choice([(image, None)])
    smallest = min(sides)
    chosen = novelty_choice([(frames[smallest], None)])
    cases[f"predict {smallest}"] = lambda: predict(chosen.result, frames[smallest], progress=False)
    timings = interleaved(cases, repeats=args.repeats)
    load_after = load_average()

    n = len(candidate_models())
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
          f"{os.cpu_count()} CPUs, 1 torch thread, load average {load_before:.2f} -> {load_after:.2f}; "
          f"{n} candidates ({', '.join(candidate_models())}); chosen on {smallest}^2: {chosen.describe()}\n")
    print("| quantity | seconds (median) | max / min |")
    print("|---|---|---|")
    print(f"| load {n} candidate models, once per process | {load_s:.3g} | |")
    for name in cases:
        print(f"| {name} | {timings.median(name):.3g} | {timings.spread(name):.2f} |")
    per_mpx = timings.median(f"novelty rule {smallest}") / (smallest ** 2 / 1e6)
    ratio = timings.ratio(f"novelty rule {smallest}", f"predict {smallest}")
    print(f"\nnovelty rule: {per_mpx:.3g} s per megapixel ({n} models); {100 * ratio:.3g} % of predict "
          f"(mc, T=16) on the same {smallest}^2 frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
