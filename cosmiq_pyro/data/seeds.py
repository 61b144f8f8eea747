"""The held-out seed convention, in one place (a tiny module: the CLI reads it at start-up).

Simulated datasets take a dataset seed; frame ``i`` of a dataset with seed ``s`` is simulated
with `simulate.frame_seed` ``(s, i)``:

* ``s < HELD_OUT_SEED``: a 32-bit hash of ``(s, i)`` -- always below ``2**32``;
* ``s >= HELD_OUT_SEED``: ``s + i`` -- always at or above ``2**32``.

So a dataset with a seed of ``HELD_OUT_SEED`` or more never shares a frame with any training set
simulated with a smaller seed.  The CLI's ``evaluate`` / ``compare`` (``--data-seed``), the demo's
test frames and ``benchmarks/run_study.py`` use seeds from ``HELD_OUT_SEED`` on.
"""
HELD_OUT_SEED = 2**32

__all__ = ["HELD_OUT_SEED"]
