"""Running a function over the overlapping tiles of an image, serially or in threads."""
from __future__ import annotations

import numbers
import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["overlapping_boxes", "resolve_n_jobs", "run_each"]


def overlapping_boxes(shape, side: int, margin: int):
    """Core boxes ``(r0, r1, c0, c1)`` of side <= ``side`` covering ``shape`` (row-major), each with
    its input box widened by ``margin`` px (clipped to the image): yields ``(core, input)``."""
    height, width = shape
    for r0 in range(0, height, side):
        for c0 in range(0, width, side):
            r1, c1 = min(r0 + side, height), min(c0 + side, width)
            yield (r0, r1, c0, c1), (max(r0 - margin, 0), min(r1 + margin, height),
                                     max(c0 - margin, 0), min(c1 + margin, width))


def resolve_n_jobs(n_jobs) -> int:
    """joblib's convention: a positive count, or ``-1`` for every CPU this process may use
    (``-2`` for all but one, and so on)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a positive int or a negative int (-1 = all cores), got {n_jobs!r}")
    if n_jobs > 0:
        return int(n_jobs)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores + 1 + int(n_jobs))


def run_each(function, items: list, workers: int) -> None:
    """Call ``function(item)`` for every item: in this thread when ``workers == 1`` or there is one
    item, else in a pool of ``min(workers, len(items))`` threads.  Results are dropped (``function``
    writes its own); the first exception is raised after the pool has finished."""
    if workers == 1 or len(items) == 1:
        for item in items:
            function(item)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            list(pool.map(function, items))
