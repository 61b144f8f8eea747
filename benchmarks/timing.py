"""Timing helpers shared by the benchmark scripts: interleaved repeats, medians, result rows.

A shared 2-core machine makes single timings noisy, so every comparison runs its cases
interleaved (A B A B ...), and a ratio is the median over repeats of the ratio of adjacent
runs (each pair sees nearly the same load).
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

THREADS = 2  # torch.set_num_threads for every benchmark (reported with the results)


@dataclass
class Row:
    """One line of the results table."""

    section: str
    quantity: str
    value: float | str
    target: str = ""
    note: str = ""
    fmt: str = ".3g"

    @property
    def met(self) -> str:
        """"yes"/"no" when ``target`` is ``"<= x"`` or ``">= x"``, else ""."""
        if not self.target or isinstance(self.value, str):
            return ""
        op, _, bound = self.target.partition(" ")
        try:
            bound = float(bound)
        except ValueError:
            return ""
        ok = self.value <= bound if op == "<=" else self.value >= bound if op == ">=" else None
        return "" if ok is None else ("yes" if ok else "**no**")

    def cells(self) -> list[str]:
        value = self.value if isinstance(self.value, str) else format(self.value, self.fmt)
        return [self.section, self.quantity, value, self.target, self.met, self.note]


@dataclass
class Timings:
    """Wall times (s) of interleaved cases: ``times[name]`` lists one value per repeat."""

    times: dict = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, num: str, den: str, den_factor: float = 1.0) -> float:
        """Median over repeats of ``t_num / (den_factor * t_den)`` (adjacent runs paired)."""
        return statistics.median(a / (den_factor * b) for a, b in zip(self.times[num], self.times[den]))

    def spread(self, name: str) -> float:
        """max / min over repeats: how noisy the case was."""
        return max(self.times[name]) / min(self.times[name])


def interleaved(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> Timings:
    """Run every case ``warmup`` times, then ``repeats`` rounds of A B C ... (wall clock)."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    out = Timings({name: [] for name in cases})
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            out.times[name].append(time.perf_counter() - start)
    return out


def load_average() -> float:
    """1-minute load average."""
    return os.getloadavg()[0]


def wait_for_quiet(max_load: float = 1.5, timeout_s: float = 600.0, poll_s: float = 15.0,
                   log=print) -> float:
    """Wait (up to ``timeout_s``) until the 1-minute load average is at most ``max_load``.

    Returns the load average when it stops waiting (which may still be high after a timeout).
    """
    deadline = time.monotonic() + timeout_s
    load = load_average()
    while load > max_load and time.monotonic() < deadline:
        log(f"  load average {load:.2f} > {max_load}: waiting {poll_s:.0f} s")
        time.sleep(poll_s)
        load = load_average()
    return load


def process_memory_mb(field: str = "VmHWM") -> float:
    """A memory line of ``/proc/self/status`` in MB: ``VmRSS`` (resident now) or ``VmHWM`` (peak).

    ``VmHWM`` belongs to this process image.  ``getrusage``'s ``ru_maxrss`` does not: Linux carries
    it across ``exec``, so a script started by a large parent (run_all.py after the prediction
    benchmarks) would report the parent's resident memory as its own peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fit_exponent(x, y) -> float:
    """Least-squares slope ``b`` of ``log y = a + b log x``."""
    import numpy as np

    b, _ = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(b)
