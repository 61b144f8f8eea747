"""Speed of the sampling-free predictive (issue 23, item 4), as ratios to one deterministic twin
pass measured side by side (cases interleaved, medians of adjacent-run ratios; `timing`).

1. Per tile: one moment pass (`MomentPass`, eager and, with ``--compile``, through
   ``torch.compile``; Gauss-Hermite output included), the linearised pass (``propagation =
   "linear"``, variances in float32 and in bfloat16; its bottleneck is the novelty features) and the novelty encoder pass (posterior
   means, `models.fused.fused_bottleneck`), against one twin pass (`models.fused.fused_logits`
   with the posterior means) on predict's CPU tile (384 px core + margins); per core pixel, so a
   smaller moment tile pays its margins.
2. Per chip: ``predict(ACS-WFC-VI, method=...)`` on a simulated 4096x2048 chip (moments, and the
   twin of the posterior means with ``T = 1`` as the unit), interleaved, and the peak resident
   memory of a moment-pass chip in a fresh process.
3. Full frame: ``cosmiq predict`` of a synthetic two-chip ``_flc`` (2 x 4096x2048, reading and
   writing included) with ``--method moments`` in a fresh process; wall time with the load
   average beside it.

Parts 2 and 3 need ``predict(method=...)`` (issue 23, item 5); they are skipped without it.

    python benchmarks/bench_moments.py --out benchmarks/moments_out [--compile] [--repeats 5]
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from timing import interleaved, load_average  # noqa: E402

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.inference.moments import CPU_TILE_PX, MomentPass, moment_settings  # noqa: E402
from cosmiq_pyro.utils.tiling import tile_margin  # noqa: E402
from cosmiq_pyro.inference.novelty import mean_weights  # noqa: E402
from cosmiq_pyro.inference.predictive import CPU_TILE, predict  # noqa: E402
from cosmiq_pyro.models.fused import fused_bottleneck, fused_logits  # noqa: E402


def simulated(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A simulated ACS-like image of any size (256 px frames tiled; electrons)."""
    from cosmiq_pyro.data.simulate import simulate_frame

    side = 512
    tiles = [simulate_frame(side, field=f, seed=seed + k).image for k, f in enumerate(("EX", "GC", "GAL", "EX"))]
    rows = [np.concatenate([tiles[(r + c) % 4] for c in range(-(-width // side))], axis=1)
            for r in range(-(-height // side))]
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:height, :width], dtype=np.float32)


def tile_ratios(vi, image: np.ndarray, repeats: int, compile_: bool, tiles=(CPU_TILE, 256, 192, 128)) -> dict:
    twin = mean_weights(vi)
    margin = tile_margin(vi.model)
    side = CPU_TILE + 2 * margin
    x = torch.from_numpy(image[:side, :side].copy())[None, None]
    core = CPU_TILE ** 2
    cases = {"twin": lambda: fused_logits(twin, x), "novelty encoder": lambda: fused_bottleneck(twin, x)}
    passes = {"eager": MomentPass(vi)}
    if compile_:
        passes["compiled"] = MomentPass(vi, compile=True)
    for dtype in ("float32", "bfloat16"):  # the linearised pass: its bottleneck is the novelty features
        settings = replace(moment_settings(vi), propagation="linear", variance_dtype=dtype)
        passes[f"linearised ({dtype} variances), novelty included"] = MomentPass(vi, settings=settings)
    per_px = {"twin": core, "novelty encoder": core}
    for kind, mp in passes.items():
        for t in tiles:
            xt = x[..., :t + 2 * margin, :t + 2 * margin].contiguous()
            name = f"moments {kind}, {t} px tiles" if kind in ("eager", "compiled") else f"{kind}, {t} px tiles"
            cases[name] = (lambda mp=mp, xt=xt: mp(xt))
            per_px[name] = t ** 2
    with torch.inference_mode():
        timings = interleaved(cases, repeats=repeats, warmup=1)
    out = {}
    for name in cases:
        if name == "twin":
            continue
        # ratio per core pixel: (t_case / px_case) / (t_twin / px_twin)
        out[name] = timings.ratio(name, "twin", den_factor=per_px[name] / per_px["twin"])
    out["twin_ms_per_tile_median"] = 1e3 * timings.median("twin")
    return out


def moments_chip(vi, image: np.ndarray, tile: int = CPU_TILE):
    """The moment maps of one chip as ``predict(method="moments")`` computes them, for a tree
    without the method switch: predict's tiles and margins, one `MomentPass` per tile, plus the
    novelty encoder pass (posterior means) per tile."""
    from cosmiq_pyro.utils.tiling import pad_to_grid, tile_boxes, tile_margin

    mp, twin = MomentPass(vi), mean_weights(vi)
    padded = pad_to_grid(image)
    maps = np.zeros((2,) + padded.shape, np.float32)
    with torch.inference_mode():
        for (r0, r1, c0, c1), (ir0, ir1, ic0, ic1) in tile_boxes(padded.shape, tile, tile_margin(vi.model)):
            x = torch.from_numpy(padded[ir0:ir1, ic0:ic1])[None, None]
            prob, alea, _ = mp(x)
            fused_bottleneck(twin, x)
            maps[0, r0:r1, c0:c1] = prob[0, 0, r0 - ir0:r1 - ir0, c0 - ic0:c1 - ic0].numpy()
            maps[1, r0:r1, c0:c1] = alea[0, 0, r0 - ir0:r1 - ir0, c0 - ic0:c1 - ic0].numpy()
    return maps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "moments_out")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="also time the torch.compile'd pass")
    p.add_argument("--skip-chip", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    vi = cq.load("ACS-WFC-VI")
    result = {"threads": args.threads, "load_before": load_average(), "torch": torch.__version__}
    image = simulated(4096, 2048)
    result["tile"] = tile_ratios(vi, image, args.repeats, args.compile)
    print(json.dumps(result["tile"], indent=1), flush=True)
    has_method = "method" in inspect.signature(predict).parameters
    if not args.skip_chip:
        from accept_published import twin_of_means

        from cosmiq_pyro.models.results import FitResult
        twin = FitResult(model=twin_of_means(vi), temperature=vi.temperature)
        moments = (lambda: predict(vi, image, method="moments", progress=False)) if has_method else \
            (lambda: moments_chip(vi, image))
        cases = {"twin chip": lambda: predict(twin, image, progress=False, novelty=False), "moments chip": moments}
        t = interleaved(cases, repeats=max(1, args.repeats // 2), warmup=0)
        result["chip"] = {"twin_s": t.median("twin chip"), "moments_s": t.median("moments chip"),
                          "ratio": t.ratio("moments chip", "twin chip"), "load": load_average(),
                          "moments_path": "predict(method='moments')" if has_method else "bench_moments.moments_chip"}
        print(json.dumps(result["chip"], indent=1), flush=True)
    if has_method and not args.skip_chip:
        code = ("import sys, numpy as np, torch; torch.set_num_threads(%d); sys.path.insert(0, %r); "
                "from bench_moments import simulated; import cosmiq_pyro as cq; "
                "from cosmiq_pyro.inference.predictive import predict; vi = cq.load('ACS-WFC-VI'); "
                "predict(vi, simulated(4096, 2048), method='moments', progress=False); "
                "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
                % (args.threads, str(ROOT / "benchmarks")))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        result["chip"]["peak_rss_mb"] = int(done.stdout.split()[-1]) / 1024 if done.returncode == 0 else done.stderr[-500:]
        with tempfile.TemporaryDirectory() as tmp:
            flc = Path(tmp) / "jsynth01q_flc.fits"
            write_flc(flc, image, simulated(4096, 2048, seed=10))
            load0 = load_average()
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", "import sys; from cosmiq_pyro.app.cli import main; "
                                   "sys.exit(main(sys.argv[1:]))", "predict", str(flc), "--method",
                                   "moments", "--tile", str(CPU_TILE_PX), "--outdir", str(Path(tmp) / "out")], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            result["full_frame"] = {"seconds": time.perf_counter() - start, "returncode": done.returncode,
                                    "load_before": load0, "load_after": load_average(),
                                    "stderr_tail": done.stderr[-300:]}
        print(json.dumps({k: result[k] for k in ("chip", "full_frame")}, indent=1, default=str), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


def write_flc(path: Path, chip1: np.ndarray, chip2: np.ndarray) -> None:
    """A two-chip ACS/WFC-like ``_flc``: PRIMARY + (SCI, DQ) per chip, in electrons."""
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    for key, value in dict(TELESCOP="HST", INSTRUME="ACS", DETECTOR="WFC", FILTER1="F606W", FILTER2="CLEAR2L",
                           EXPTIME=500.0).items():
        primary.header[key] = value
    hdus = [primary]
    for ver, chip in ((1, chip1), (2, chip2)):
        sci = fits.ImageHDU(chip, name="SCI", ver=ver)
        sci.header["BUNIT"] = "ELECTRONS"
        sci.header["CCDCHIP"] = 3 - ver
        hdus += [sci, fits.ImageHDU(np.zeros(chip.shape, np.int16), name="DQ", ver=ver)]
    fits.HDUList(hdus).writeto(path)


if __name__ == "__main__":
    sys.exit(main())
