"""Peak memory of `predict(T=16)` on a 4096 x 2048 chip, measured in a fresh process.

Run::

    python benchmarks/bench_memory.py [--height 2048] [--width 4096] [-T 16] [--child]

The parent starts a fresh Python process (``--child``) that builds the Bayesian twin, makes the
image, records its resident memory (RSS) before `predict`, runs `predict` once and prints the
peak RSS of the whole process (``VmHWM`` of ``/proc/self/status``: torch, the model, the
image and the maps included) as JSON.  Target: peak <= 2 GB.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def child(height: int, width: int, T: int, threads: int) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_predict import make_image, make_models
    from timing import process_memory_mb

    from cosmiq_pyro import predict

    torch.set_num_threads(threads)
    _, fit = make_models()
    image = make_image(height, width)
    before = process_memory_mb("VmRSS")
    start = time.perf_counter()
    pred = predict(fit, image, T=T, progress=False)
    seconds = time.perf_counter() - start
    peak = process_memory_mb("VmHWM")  # not ru_maxrss, which exec carries over from the parent
    return {"height": height, "width": width, "T": T, "threads": threads, "rss_before_mb": before,
            "peak_rss_mb": peak, "seconds": seconds, "shape": list(pred.prob.shape)}


def measure(height: int = 2048, width: int = 4096, T: int = 16, threads: int = 2) -> dict:
    """Run `child` in a fresh interpreter and return its JSON report."""
    out = subprocess.run([sys.executable, __file__, "--child", "--height", str(height), "--width", str(width),
                          "-T", str(T), "--threads", str(threads)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=2048)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("-T", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.height, args.width, args.T, args.threads)))
    else:
        print(json.dumps(measure(args.height, args.width, args.T, args.threads), indent=1))


if __name__ == "__main__":
    main()
