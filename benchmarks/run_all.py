"""Run every benchmark and print one table (also written as markdown to benchmarks/results.md).

Run::

    python benchmarks/run_all.py [--quick] [--out benchmarks/results.md] [--max-load 1.5]

``make bench`` runs it.  Sections: Monte Carlo prediction (`bench_predict`: MC overhead, deepCR,
compute efficiency, vectorised sampling, tile size, threads, scaling), training
(`bench_train`), peak memory in a fresh process (`bench_memory`), simulator frames per second
(`bench_simulate.py`) and metric throughput (`bench_metrics.py`).  Before measuring it waits
(up to ``--wait-s``) for the 1-minute load average to fall to ``--max-load``; the table records
the load at start and end, the machine and the thread setting.  ``--quick`` is a smoke run
(small images, one repeat): its figures are not the benchmark's.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from timing import THREADS, Row, load_average, wait_for_quiet  # noqa: E402

import bench_memory  # noqa: E402
import bench_predict  # noqa: E402
import bench_train  # noqa: E402

HEADER = ["section", "quantity", "value", "target", "met", "note"]


def machine() -> str:
    """One line describing the CPU, memory and software."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    except (ValueError, OSError):
        mem_gb = float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM; Python {platform.python_version()}, "
            f"torch {torch.__version__} (oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}), "
            f"torch.set_num_threads({THREADS})")


def _script(name: str, args: list[str], env_threads: int | None = None) -> str:
    env = dict(os.environ)
    if env_threads is not None:
        env["OMP_NUM_THREADS"] = str(env_threads)
    out = subprocess.run([sys.executable, str(HERE / name), *args], check=True, capture_output=True,
                         text=True, env=env)
    return out.stdout


def simulator_rows(quick: bool) -> list[Row]:
    """Frames per second from bench_simulate.py (one core), its 'mixed' row."""
    sec = "simulator (256x256 frames, 1 thread)"
    try:
        text = _script("bench_simulate.py", ["--frames", "6" if quick else "60"])
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        return [Row(sec, "bench_simulate.py", f"failed: {err}")]
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("EX", "GC", "GAL", "mixed"):
            try:
                wall, cpu = float(parts[1]), float(parts[2])
            except ValueError:
                continue
            rows.append(Row(sec, f"{parts[0]} frames/s (cpu time; wall {wall:.1f})", cpu, fmt=".1f",
                            target=">= 20" if parts[0] == "mixed" else ""))
    return rows or [Row(sec, "bench_simulate.py output", text.strip().replace("\n", " / "))]


def metrics_rows(quick: bool) -> list[Row]:
    """Millions of pixels per second of each metric from bench_metrics.py."""
    frames, size = ("1", "500") if quick else ("5", "2000")
    sec = f"metrics ({frames} frames of {size}x{size})"
    try:
        text = _script("bench_metrics.py", ["--frames", frames, "--size", size])
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        return [Row(sec, "bench_metrics.py", f"failed: {err}")]
    rows = []
    for line in text.splitlines():
        name, rest = line[:36].strip(), line[36:].split()
        if len(rest) >= 2:
            try:
                rows.append(Row(sec, f"{name} [Mpix/s]", float(rest[1]), fmt=".1f"))
            except ValueError:
                continue
    return rows or [Row(sec, "bench_metrics.py output", text.strip().replace("\n", " / "))]


def memory_rows(quick: bool) -> list[Row]:
    height, width, T = (512, 1024, 2) if quick else (2048, 4096, 16)
    report = bench_memory.measure(height, width, T, THREADS)
    sec = f"memory (predict T={T} on {width}x{height}, fresh process)"
    return [Row(sec, "peak RSS of the process [GB]", report["peak_rss_mb"] / 1024, "<= 2",
                f"RSS before predict {report['rss_before_mb'] / 1024:.2f} GB", fmt=".2f"),
            Row(sec, "time [s, this machine]", report["seconds"])]


def markdown(rows: list[Row], preamble: list[str]) -> str:
    lines = preamble + ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


#: Sections of results.md that other scripts write (benchmarks/bench_batch.py): kept on a rerun.
KEPT_HEADINGS = ("## Batch prediction on Dask",)


def kept_sections(path: Path) -> str:
    """The part of an existing ``path`` from the first of `KEPT_HEADINGS` on ("" if none)."""
    if not path.exists():
        return ""
    text = path.read_text()
    starts = [text.find(h) for h in KEPT_HEADINGS if text.find(h) >= 0]
    return "\n" + text[min(starts):] if starts else ""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown output (default benchmarks/results.md; quick runs: results-quick.md)")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for this 1-minute load average")
    parser.add_argument("--wait-s", type=float, default=None, help="longest wait for a quiet machine (s)")
    args = parser.parse_args(argv)
    out = args.out or HERE / ("results-quick.md" if args.quick else "results.md")
    wait_s = args.wait_s if args.wait_s is not None else (0.0 if args.quick else 900.0)

    torch.set_num_threads(THREADS)
    load_start = wait_for_quiet(args.max_load, wait_s)
    started = time.perf_counter()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    rows: list[Row] = []
    loads = []
    for name, section in (("prediction", bench_predict.run), ("training", bench_train.run),
                          ("memory", lambda quick, log: memory_rows(quick)),
                          ("simulator", lambda quick, log: simulator_rows(quick)),
                          ("metrics", lambda quick, log: metrics_rows(quick))):
        loads.append(f"{name} {load_average():.1f}")
        log(f"== {name} (load average {load_average():.2f})")
        rows += section(args.quick, log)
    load_end = load_average()

    preamble = [
        f"# Benchmarks{' (quick smoke run: not the benchmark figures)' if args.quick else ''}",
        "",
        f"Machine: {machine()}.",
        f"Load average (1 min; the benchmark's own {THREADS} threads count, so about {THREADS} means "
        f"an otherwise idle machine): {load_start:.2f} at start, {load_end:.2f} at end; "
        f"total {time.perf_counter() - started:.0f} s; at the start of each section: {', '.join(loads)}.  "
        "Times are this machine's; ratios are medians over interleaved repeats.",
        f"Command: `python benchmarks/run_all.py{' --quick' if args.quick else ''}`",
    ]
    text = markdown(rows, preamble) + kept_sections(out)
    write_atomic(out, text)
    print(text)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
