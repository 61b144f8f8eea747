"""Throughput of `cosmiq_pyro.data.simulate`: simulated frames per second on one core.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_simulate.py [--frames 60] [--size 256]

Prints frames/s per field type and for a mixed set (fields, filters and exposure times
drawn by `frame_spec`, as `make_dataset` does), by wall clock and by process CPU time
(CPU time is the fairer single-core figure on a shared machine), and the ratio to the
target of 20 frames/s for 256 x 256 frames.  The one-off cost of the cached PSFs and
galaxy library is measured separately.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import time  # noqa: E402

from cosmiq_pyro.data import simulate  # noqa: E402

TARGET_FPS = 20.0


def _rate(specs, size):
    wall, cpu = time.perf_counter(), time.process_time()
    for spec in specs:
        simulate.simulate_frame(size=size, **spec)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(specs) / wall, len(specs) / cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per measurement")
    parser.add_argument("--size", type=int, default=256, help="frame width in pixels")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    for filter in simulate.resolve_instrument("ACS-WFC").simulation.filter_names:  # fill the PSF and galaxy-library caches
        for field in simulate.FIELDS:
            simulate.simulate_frame(size=args.size, field=field, filter=filter, seed=0)
    print(f"first frames (PSF + galaxy library caches, 9 frames): "
          f"{time.perf_counter() - start:.2f} s")

    print(f"{'set':8s} {'frames/s (wall)':>16s} {'frames/s (cpu)':>15s} {'cpu / target':>13s}")
    rows = [(field, (field,)) for field in simulate.FIELDS] + [("mixed", simulate.FIELDS)]
    for name, fields in rows:
        specs = [simulate.frame_spec(i, 1, fields) for i in range(args.frames)]
        wall_fps, cpu_fps = _rate(specs, args.size)
        print(f"{name:8s} {wall_fps:16.1f} {cpu_fps:15.1f} {cpu_fps / TARGET_FPS:12.2f}x")


if __name__ == "__main__":
    main()
