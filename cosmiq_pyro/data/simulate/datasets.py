"""Datasets of simulated frames: the per-frame draws (`frame_spec`, `frame_seed`) and the
stacked `SimulatedSet` made by `make_dataset`."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..seeds import HELD_OUT_SEED
from .camera import DEFAULT_INSTRUMENT, resolve_instrument
from .frames import check_defects, simulate_frame
from .labels import check_label_rule
from .validation import (
    _check_choices, _check_exptime_range, _check_field, _check_int,
    _check_multiplier, _check_seed, check_size,
)

__all__ = ["SimulatedSet", "frame_seed", "frame_spec", "make_dataset"]


@dataclass
class SimulatedSet:
    """A stack of simulated frames, as deepCR's ``train(mode='pair')`` takes them.

    Attributes
    ----------
    image : numpy.ndarray, float32, shape (n, size, size)
    mask, ignore : numpy.ndarray, bool, shape (n, size, size)
    sky : numpy.ndarray, float32, shape (n,)
        Sky level of each frame in electrons (deepCR's ``sky`` for sky augmentation).
    meta : pandas.DataFrame
        One row per frame: the `SimulatedFrame.meta` entries plus ``index``.
    """

    image: np.ndarray
    mask: np.ndarray
    ignore: np.ndarray
    sky: np.ndarray
    meta: pd.DataFrame

    def __len__(self):
        return self.image.shape[0]


def frame_seed(seed, i):
    """Seed of frame ``i`` of a dataset with seed ``seed``.

    For ``seed < HELD_OUT_SEED``: ``numpy.random.SeedSequence([seed, i])`` hashed to one 32-bit
    word, so that frame ``i`` can be simulated alone and frames of nearby (seed, i) pairs are
    independent.  For a held-out dataset (``seed >= HELD_OUT_SEED``): ``seed + i``, above every
    hashed value, so held-out frames never coincide with training frames (`cosmiq_pyro.data.seeds`).

    Parameters
    ----------
    seed, i : int
        Non-negative dataset seed and frame index.

    Returns
    -------
    int
    """
    seed = _check_seed(seed)
    i = _check_seed(i, "i")
    if seed >= HELD_OUT_SEED:
        return seed + i
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def frame_spec(i, seed=0, fields=None, filters=None, exptime_s=None, *,
               instrument=DEFAULT_INSTRUMENT):
    """Field, filter, exposure time and seed of frame ``i`` of a dataset, without simulating.

    Field and filter are drawn uniformly from ``fields`` and ``filters``; the exposure time
    is log-uniform on ``exptime_s = (min, max)`` (rounded to 0.1 s) or fixed if a number.
    The draws depend only on ``(seed, i)``.  Each of the three left None is the
    ``instrument``'s spec's (``[simulation] fields``, its filters, ``exptime_s``).

    Returns
    -------
    dict
        ``field``, ``filter``, ``exptime_s``, ``seed``: keyword arguments of
        `simulate_frame`.
    """
    seed = _check_seed(seed)
    i = _check_seed(i, "i")
    sim = resolve_instrument(instrument).simulation
    fields = _check_choices(sim.fields if fields is None else fields, _check_field, "fields")
    filters = _check_choices(sim.filter_names if filters is None else filters,
                             lambda f: sim.filter(f).name, "filters")
    lo, hi = _check_exptime_range(sim.exptime_s if exptime_s is None else exptime_s)
    rng = np.random.default_rng([seed, i, 2])
    field = fields[int(rng.integers(len(fields)))]
    filter = filters[int(rng.integers(len(filters)))]
    t = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    t = min(max(round(t, 1), lo), hi)
    return dict(field=field, filter=filter, exptime_s=float(t), seed=frame_seed(seed, i))


def make_dataset(n, size=256, fields=None, filters=None, exptime_s=None, seed=0, *,
                 label_rule=None, mask_threshold_sigma=None, defects=None,
                 instrument=DEFAULT_INSTRUMENT, cr_rate_multiplier=1.0, min_cr_pixels=0):
    """Simulate ``n`` frames; frame ``i`` is ``simulate_frame(size, **frame_spec(i, ...))``.

    Parameters
    ----------
    n : int
        Number of frames (>= 1).
    size : int
        Frame width (>= 16).
    fields, filters : sequence of str, optional
        Field types and filters drawn from (see `frame_spec`; default the spec's).
    exptime_s : float or (float, float), optional
        Exposure time, or the range it is drawn from (log-uniform), in seconds (default the
        spec's).
    seed : int
        Dataset seed.
    label_rule : {"drizcr", "sigma"}, optional
        CR labelling rule, see `simulate_frame` (recorded in ``meta["label_rule"]``).
    mask_threshold_sigma : float, optional
        k of the ``"sigma"`` rule, see `simulate_frame`.
    defects : sequence of str, optional
        Which of `DEFECTS` (warm/hot pixels, bad columns, CTE trails) the frames have
        (default all the spec models).
    instrument : str, os.PathLike or Instrument
        The camera (see `simulate_frame`).
    cr_rate_multiplier : float
        Factor on the real CR rate (recorded in ``meta``); for a training set of a ground-based
        camera, its spec's ``simulation.cr_rate_multiplier``.  Keep 1 for test sets.
    min_cr_pixels : int
        The fewest CR pixels (``mask``, outside ``ignore``) the set must hold: fewer is a
        ValueError naming what to raise (for a training set: the spec's
        ``simulation.min_cr_pixels``).

    Returns
    -------
    SimulatedSet
        ``image`` (n, size, size) float32, ``mask`` and ``ignore`` bool, ``sky`` (n,)
        float32 and ``meta`` (one row per frame, with its ``index``).
    """
    n = _check_int(n, "n", 1, "a positive int")
    size = check_size(size)
    inst = resolve_instrument(instrument)
    label_rule = check_label_rule(inst.simulation.label_rule if label_rule is None else label_rule)
    defects = check_defects(defects, inst)
    cr_rate_multiplier = _check_multiplier(cr_rate_multiplier)
    min_cr_pixels = _check_int(min_cr_pixels, "min_cr_pixels", 0)
    image = np.empty((n, size, size), np.float32)
    mask = np.empty((n, size, size), bool)
    ignore = np.empty((n, size, size), bool)
    sky = np.empty(n, np.float32)
    rows = []
    for i in range(n):
        spec = frame_spec(i, seed, fields, filters, exptime_s, instrument=inst)
        frame = simulate_frame(size=size, label_rule=label_rule,
                               mask_threshold_sigma=mask_threshold_sigma, defects=defects,
                               instrument=inst, cr_rate_multiplier=cr_rate_multiplier, **spec)
        image[i], mask[i], ignore[i], sky[i] = frame.image, frame.mask, frame.ignore, frame.sky_e
        rows.append(dict(index=i, **frame.meta))
    n_cr = int((mask & ~ignore).sum())
    if n_cr < min_cr_pixels:
        raise ValueError(f"min_cr_pixels: the {n} frames hold {n_cr} CR pixels, fewer than "
                         f"{min_cr_pixels}; simulate more or larger frames, or raise "
                         f"cr_rate_multiplier (now {cr_rate_multiplier:g})")
    return SimulatedSet(image=image, mask=mask, ignore=ignore, sky=sky, meta=pd.DataFrame(rows))
