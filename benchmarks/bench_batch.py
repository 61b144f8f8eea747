"""Batch prediction throughput: frames per minute with 1 and 2 Dask workers, and what limits a cluster.

Run::

    python benchmarks/bench_batch.py [--frames 16] [--side 2048] [--workers 1,2] [--out DIR]

Frames: ``--frames`` FITS files of ``--side`` x ``--side`` px (SCI in electrons, one chip), cut
from simulated ACS/WFC-like frames (`simulate.simulate_frame`, two seeds, reused: the network's
cost does not depend on the pixels).  Model: the package default (`modelcache.DEFAULT_MODEL`,
deepCR's ACS-WFC weights in the deterministic twin: one pass per frame).

Measured, in this order:

* the cost of a worker's start: importing cosmiq_pyro + torch and loading the model in a fresh
  process (what every new worker pays once);
* per-frame I/O: reading a frame (`read_hst`) and writing its product (`write_products`),
  against the prediction itself (one torch thread);
* serial `predict_many` in this process (one torch thread), then `predict_many` on a
  `local_client(N)` for each N of ``--workers``: frames per minute over the batch (wall
  time from submission to the last row, on warm workers; the cluster's start and the workers'
  imports and model load are reported apart as "start"), and each worker's peak resident
  memory (``VmHWM``);
* scaling efficiency ``rate(N) / (N * rate(1))``.

The machine's 1-minute load average is printed at the start and end of each case: on a shared
machine, throughput with N workers is bounded by the cores other processes leave free.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_average, wait_for_quiet  # noqa: E402


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
    """Seconds to import cosmiq_pyro's batch module (torch, astropy, pandas) and load the default
    model in a fresh Python process, as a new worker does."""
    code = ("import time; t0 = time.perf_counter(); import torch; from cosmiq_pyro.app import batch; "
            "t1 = time.perf_counter(); from cosmiq_pyro.app.modelcache import cached_model, DEFAULT_MODEL; "
            "cached_model(DEFAULT_MODEL); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"import_s": float(out[0]), "model_load_s": float(out[1])}


def io_and_predict(path: Path, outdir: Path) -> dict:
    """Seconds to read one frame, predict it (one torch thread) and write its product."""
    import torch

    from cosmiq_pyro.app.modelcache import DEFAULT_MODEL, cached_model
    from cosmiq_pyro.app.products import Provenance, write_products
    from cosmiq_pyro.inference.predictive import predict
    from cosmiq_pyro.io.fitsio import read_hst

    loaded = cached_model(DEFAULT_MODEL)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        images = read_hst(path)
        t1 = time.perf_counter()
        predictions = [predict(loaded.result, im.image, ignore=im.ignore, progress=False) for im in images]
        t2 = time.perf_counter()
        provenance = Provenance(model_file=str(loaded.weights_file), model_sha256=loaded.sha256,
                                model_kind="UNet2Sigmoid", T=1, threshold=0.5, seed=0)
        write_products(outdir / "io_probe_cosmiq.fits", images, predictions, provenance, overwrite=True)
        t3 = time.perf_counter()
    finally:
        torch.set_num_threads(before)
    size_mb = (outdir / "io_probe_cosmiq.fits").stat().st_size / 1e6
    (outdir / "io_probe_cosmiq.fits").unlink()
    return {"read_s": t1 - t0, "predict_s": t2 - t1, "write_s": t3 - t2, "input_mb": path.stat().st_size / 1e6,
            "product_mb": size_mb}


def run_serial(frames: list[Path], outdir: Path) -> dict:
    import torch

    from cosmiq_pyro.app.batch import predict_many

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a benchmark script may; the library never does
    try:
        load0 = load_average()
        start = time.perf_counter()
        table = predict_many(frames, outdir=outdir, progress=False)
        wall = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    assert (table["status"] == "done").all(), table[table["status"] != "done"]
    return {"workers": "serial", "wall_s": wall, "frames_per_min": 60 * len(frames) / wall,
            "median_frame_s": float(table["seconds"].median()), "startup_s": 0.0,
            "worker_peak_mb": _peak_rss_mb(), "load": (load0, load_average())}


def _warm_up() -> None:
    from cosmiq_pyro.app.modelcache import DEFAULT_MODEL, cached_model

    cached_model(DEFAULT_MODEL)


def run_cluster(frames: list[Path], outdir: Path, n_workers: int) -> dict:
    from cosmiq_pyro.app.batch import predict_many
    from cosmiq_pyro.app.workers import local_client

    load0 = load_average()
    t0 = time.perf_counter()
    with local_client(n_workers) as client:
        client.run(_warm_up)  # what every worker pays once: imports and the model load
        started = time.perf_counter()
        table = predict_many(frames, outdir=outdir, client=client, progress=False)
        wall = time.perf_counter() - started
        peaks = client.run(_peak_rss_mb)
    assert (table["status"] == "done").all(), table[table["status"] != "done"]
    return {"workers": n_workers, "wall_s": wall, "frames_per_min": 60 * len(frames) / wall,
            "median_frame_s": float(table["seconds"].median()), "startup_s": started - t0,
            "worker_peak_mb": max(peaks.values()), "load": (load0, load_average())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
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

    rows = [run_serial(frames, work / "serial")]
    for n in workers:
        rows.append(run_cluster(frames, work / f"dask{n}", n))
    one = next((r for r in rows if r["workers"] == 1), None)
    print()
    print(f"| workers | frames/min | wall [s] | median s/frame | start [s] | peak RSS per worker [MB] "
          f"| scaling efficiency | load (start, end) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        eff = "" if one is None or r["workers"] == "serial" else \
            f"{r['frames_per_min'] / (r['workers'] * one['frames_per_min']):.2f}"
        print(f"| {r['workers']} | {r['frames_per_min']:.2f} | {r['wall_s']:.1f} | {r['median_frame_s']:.2f} | "
              f"{r['startup_s']:.1f} | {r['worker_peak_mb']:.0f} | {eff} | {r['load'][0]:.2f}, {r['load'][1]:.2f} |")
    print(f"\n{args.frames} frames of {args.side}x{args.side}, the default model; load average at end "
          f"{load_average():.2f}")


if __name__ == "__main__":
    main()
