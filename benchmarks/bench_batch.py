"""Batch prediction throughput: frames per minute with 1 and 2 Dask workers, and what limits a cluster.

Run::

    python benchmarks/bench_batch.py [--frames 16] [--side 2048] [--workers 1,2] [--out DIR]

Frames: ``--frames`` FITS files of ``--side`` x ``--side`` px (SCI in electrons, one chip), cut
from simulated ACS/WFC-like frames (`simulate.simulate_frame`, two seeds, reused: the network's
cost does not depend on the pixels).  Model: `MODEL`, the shipped ACS-WFC-VI, named (the default,
``"auto"``, would add the novelty rule's encoder passes to these header-less frames:
benchmarks/bench_automodel.py measures that apart).

Measured, in this order:

* the cost of a worker's start: importing cosmiq_pyro + torch and loading the model in a fresh
  process (what every new worker pays once);
* per-frame I/O: reading a frame (`read_hst`) and writing its product (`write_products`),
  against the prediction itself (one torch thread);
* serial `predict_many` in this process (one torch thread) and `predict_many` on a
  `local_client(N)` for each N of ``--workers``, interleaved over ``--rounds`` rounds (serial,
  1, 2, serial, 1, 2, ...; every batch redoes all frames): frames per minute over the batch
  (wall time from submission to the last row, on warm workers; the cluster's start and the
  workers' imports and model load are reported apart as "start"), and each worker's peak
  resident memory (``VmHWM``);
* scaling efficiency ``rate(N) / (N * rate(1))``, the median over rounds of the ratio within
  a round.

The machine's 1-minute load average is printed at the start and end of each batch: on a shared
machine, throughput with N workers is bounded by the cores other processes leave free.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_average, wait_for_quiet  # noqa: E402

#: The model every frame runs with (named: see the module docstring).
MODEL = "ACS-WFC-VI"


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_frames(folder: Path, n: int, side: int) -> list[Path]:
    """``n`` single-chip FITS frames of ``side`` px in electrons (two simulated frames, reused)."""
    from astropy.io import fits

    from cosmiq_pyro.data.simulate import simulate_frame

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"frame{k:03d}_flc.fits" for k in range(n)]
    if all(p.exists() and fits.getdata(p, "SCI").shape == (side, side) for p in paths):
        return paths  # made by an earlier run in the same --out
    sources = [simulate_frame(side, field=field, seed=seed).image for seed, field in ((1, "EX"), (2, "GC"))]
    paths = []
    for k in range(n):
        sci = fits.ImageHDU(sources[k % 2], name="SCI")
        sci.header["BUNIT"] = "ELECTRONS"
        path = folder / f"frame{k:03d}_flc.fits"
        fits.HDUList([fits.PrimaryHDU(), sci]).writeto(path, overwrite=True)
        paths.append(path)
    return paths


def worker_start_cost() -> dict:
    """Seconds to import cosmiq_pyro's batch module (torch, astropy, pandas) and load `MODEL` in a
    fresh Python process, as a new worker does."""
    code = ("import time; t0 = time.perf_counter(); import torch; from cosmiq_pyro.app import batch; "
            "t1 = time.perf_counter(); from cosmiq_pyro.app.modelcache import cached_model; "
            f"cached_model({MODEL!r}); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"import_s": float(out[0]), "model_load_s": float(out[1])}


def io_and_predict(path: Path, outdir: Path) -> dict:
    """Seconds to read one frame, predict it (one torch thread) and write its product."""
    import torch

    from cosmiq_pyro.app.modelcache import cached_model
    from cosmiq_pyro.app.products import write_products
    from cosmiq_pyro.app.provenance import Provenance
    from cosmiq_pyro.inference.predictive import predict
    from cosmiq_pyro.io.fitsio import read_hst

    loaded = cached_model(MODEL)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        images = read_hst(path)
        t1 = time.perf_counter()
        predictions = [predict(loaded.result, im.image, ignore=im.ignore, progress=False) for im in images]
        t2 = time.perf_counter()
        provenance = Provenance(model_file=str(loaded.weights_file), model_sha256=loaded.sha256,
                                model_kind=type(loaded.result.model).__name__, T=predictions[0].T,
                                method=predictions[0].method, threshold=0.5, seed=0)
        write_products(outdir / "io_probe_cosmiq.fits", images, predictions, provenance, overwrite=True)
        t3 = time.perf_counter()
    finally:
        torch.set_num_threads(before)
    size_mb = (outdir / "io_probe_cosmiq.fits").stat().st_size / 1e6
    (outdir / "io_probe_cosmiq.fits").unlink()
    return {"read_s": t1 - t0, "predict_s": t2 - t1, "write_s": t3 - t2, "input_mb": path.stat().st_size / 1e6,
            "product_mb": size_mb}


def _warm_up() -> None:
    from cosmiq_pyro.app.modelcache import cached_model

    cached_model(MODEL)


def _batch(frames, outdir, client) -> tuple[float, float]:
    """(wall seconds, median seconds per frame) of one `predict_many` over ``frames`` (redone)."""
    from cosmiq_pyro.app.batch import predict_many

    start = time.perf_counter()
    table = predict_many(frames, model=MODEL, outdir=outdir, client=client, overwrite=True, progress=False)
    wall = time.perf_counter() - start
    assert (table["status"] == "done").all(), table[table["status"] != "done"]
    return wall, float(table["seconds"].median())


def run_cases(frames: list[Path], work: Path, workers: list[int], rounds: int) -> list[dict]:
    """Serial and every cluster size, interleaved round by round (each round sees about the same load).

    Serial runs in this process with one torch thread; each cluster is started (and its workers
    warmed up: imports, model load) once, before the first round, and kept for all rounds.
    """
    import torch

    from cosmiq_pyro.app.workers import local_client

    cases = {"serial": None}
    start_s = {"serial": 0.0}
    peaks = {}
    with ExitStack() as stack:
        for n in workers:
            t0 = time.perf_counter()
            client = stack.enter_context(local_client(n))
            client.run(_warm_up)  # what every worker pays once: imports and the model load
            start_s[n] = time.perf_counter() - t0
            cases[n] = client
        _warm_up()
        results = {name: [] for name in cases}
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # serial case: one torch thread, as each worker has
        try:
            for r in range(rounds):
                for name, client in cases.items():
                    load0 = load_average()
                    wall, median = _batch(frames, work / f"out_{name}", client)
                    results[name].append({"wall_s": wall, "median_frame_s": median, "load": (load0, load_average())})
                    print(f"  round {r + 1} {name}: {wall:.1f} s, load {load0:.2f} -> {load_average():.2f}")
        finally:
            torch.set_num_threads(before)
        for name, client in cases.items():
            if client is not None:
                peaks[name] = max(client.run(_peak_rss_mb).values())
    rows = []
    for name, runs in results.items():
        rates = [60 * len(frames) / run["wall_s"] for run in runs]
        row = {"workers": name, "frames_per_min": statistics.median(rates), "rates": rates,
               "median_frame_s": statistics.median(run["median_frame_s"] for run in runs),
               "start_s": start_s[name], "worker_peak_mb": peaks.get(name, float("nan")),
               "loads": [run["load"] for run in runs]}
        if name != "serial" and 1 in results:  # paired by round: rate(N) / (N rate(1))
            ones = [60 * len(frames) / run["wall_s"] for run in results[1]]
            row["efficiency"] = statistics.median(rate / (name * one) for rate, one in zip(rates, ones))
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every case (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--max-load", type=float, default=None,
                        help="first wait (up to 20 min) for the 1-minute load average to fall to this")
    args = parser.parse_args(argv)
    workers = [int(n) for n in args.workers.split(",")]
    if args.max_load is not None:
        wait_for_quiet(args.max_load, timeout_s=1200.0)

    work = Path(args.out or tempfile.mkdtemp(prefix="bench_batch_"))
    print(f"load average at start {load_average():.2f}; {os.cpu_count()} CPUs; work directory {work}")
    frames = make_frames(work / "frames", args.frames, args.side)
    start = worker_start_cost()
    io = io_and_predict(frames[0], work)
    print(f"worker start: import {start['import_s']:.2f} s, model load {start['model_load_s']:.3f} s")
    print(f"per frame ({args.side}x{args.side}): read {io['read_s']:.3f} s ({io['input_mb']:.1f} MB), "
          f"predict {io['predict_s']:.2f} s (1 thread), write {io['write_s']:.3f} s ({io['product_mb']:.1f} MB)")

    rows = run_cases(frames, work, workers, args.rounds)
    print()
    print("| workers | frames/min (median of rounds) | each round | median s per frame | start [s] "
          "| peak RSS per worker [MB] | scaling efficiency | load per round (start, end) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        eff = f"{r['efficiency']:.2f}" if "efficiency" in r else ""
        peak = "" if r["workers"] == "serial" else f"{r['worker_peak_mb']:.0f}"
        print(f"| {r['workers']} | {r['frames_per_min']:.2f} | {', '.join(f'{x:.2f}' for x in r['rates'])} "
              f"| {r['median_frame_s']:.2f} | {r['start_s']:.1f} | {peak} | {eff} "
              f"| {'; '.join(f'{a:.1f}, {b:.1f}' for a, b in r['loads'])} |")
    print(f"\n{args.frames} frames of {args.side}x{args.side}, the default model; load average at end "
          f"{load_average():.2f}")


if __name__ == "__main__":
    main()
