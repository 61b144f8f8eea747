"""Frames of a camera simulated on the fly as a torch Dataset: `SimulatedDataset`.

Item ``i`` is always the same frame of `cosmiq_pyro.data.simulate`, and nothing is stored.
Items follow the Dataset contract (`cosmiq_pyro.data.items`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..utils.checks import check_float, check_int
from .items import WorkerRng, check_index, dihedral, to_item

__all__ = ["SimulatedDataset"]


class SimulatedDataset(Dataset):
    """Frames of a camera (ACS/WFC by default) simulated on the fly by `cosmiq_pyro.data.simulate`.

    Item ``i`` is ``simulate.simulate_frame(size=size, **simulate.frame_spec(i, ...))``: its
    field, filter, exposure time and seed depend only on ``(i, seed)``, so every epoch (and
    every process) sees the same frames and nothing is stored.

    Parameters
    ----------
    n : int
        Number of frames.
    size : int
        Frame width W (frames are W x W).
    fields, filters : str or sequence of str, optional
        Field types and filters drawn from (default the spec's; see `cosmiq_pyro.data.simulate`);
        one string is one name.
    exptime_s : float or (float, float), optional
        Exposure time, or the range it is drawn from, in seconds (default the spec's).
    seed : int
        Seed of the frame specifications and of the ``augment`` draws.
    augment : bool
        Apply a random flip / 90-degree rotation to image, mask and ignore alike.
    label_rule : {"drizcr", "sigma"}, optional
        CR labelling rule passed to `simulate.simulate_frame` (default the spec's: AstroDrizzle's
        driz_cr for HST, k sigma for DECam).
    mask_threshold_sigma : float, optional
        k of the ``"sigma"`` rule, passed to `simulate.simulate_frame` (default the spec's).
    defects : sequence of str, optional
        Which of ``simulate.DEFECTS`` (warm/hot pixels, bad columns, CTE trails) the frames
        have (default all the spec models), passed to `simulate.simulate_frame`.
    instrument : str, os.PathLike or Instrument
        The camera: a shipped spec's name, a TOML spec path or an `Instrument`.
    cr_rate_multiplier : float
        Factor on the real CR rate (recorded in each frame's meta): for training on a
        ground-based camera, its spec's ``simulation.cr_rate_multiplier``; 1 (the default,
        the real rate) for held-out frames.
    star_core_weight : float or (float, float), optional
        Give each item a fourth tensor, per-pixel likelihood weights (`simulate.star_core_weights`):
        this value on the cores of bright stars (or ``(clean, cr)``: one for the pixels labelled
        clean, one for the CR pixels), 1 elsewhere (for training;
        `likelihood.BernoulliMaskLikelihood`).  None (default): items are ``(image, mask, ignore)``.

    Attributes
    ----------
    meta : pandas.DataFrame
        One row per frame (field, filter, exptime_s, seed, instrument, cr_rate_multiplier),
        known without simulating.
    """

    def __init__(self, n, size=256, fields=None, filters=None, exptime_s=None, seed=0,
                 augment=False, *, label_rule=None, mask_threshold_sigma=None, defects=None,
                 instrument="ACS-WFC", cr_rate_multiplier=1.0, star_core_weight=None):
        # imported here: galsim takes ~1 s to import and PairDataset users do not need it
        from . import simulate

        n = check_int(n, "n", minimum=1)
        self._augmenter = WorkerRng(seed)
        self.size = simulate.check_size(size)  # the simulator's own limits, checked now
        self._simulate = simulate
        self.n, self.seed = int(n), int(seed)
        self.instrument = simulate.resolve_instrument(instrument)
        sim = self.instrument.simulation
        # one name given as a string is that name, not its letters
        self.fields = tuple(sim.fields if fields is None else (fields,) if isinstance(fields, str) else fields)
        self.filters = tuple(sim.filter_names if filters is None else (filters,) if isinstance(filters, str)
                             else filters)
        self.exptime_s = sim.exptime_s if exptime_s is None else exptime_s
        self.augment = bool(augment)
        self.label_rule = simulate.check_label_rule(sim.label_rule if label_rule is None else label_rule)
        self.mask_threshold_sigma = mask_threshold_sigma
        self.defects = simulate.check_defects(defects, self.instrument)
        self.cr_rate_multiplier = check_float(cr_rate_multiplier, "cr_rate_multiplier", positive=True)
        self.star_core_weight = _check_star_core_weight(star_core_weight)
        # frame_spec validates fields, filters and exptime_s
        self._specs = [simulate.frame_spec(i, self.seed, self.fields, self.filters, self.exptime_s,
                                           instrument=self.instrument) for i in range(self.n)]
        self.meta = pd.DataFrame(self._specs).assign(instrument=self.instrument.name,
                                                     cr_rate_multiplier=self.cr_rate_multiplier)

    def __len__(self):
        return self.n

    def frame(self, i):
        """The full `SimulatedFrame` of item ``i`` (noiseless image, CR image, meta...)."""
        return self._simulate.simulate_frame(size=self.size, label_rule=self.label_rule,
                                             mask_threshold_sigma=self.mask_threshold_sigma,
                                             defects=self.defects, instrument=self.instrument,
                                             cr_rate_multiplier=self.cr_rate_multiplier,
                                             **self._specs[check_index(i, self.n)])

    def __getitem__(self, i):
        f = self.frame(i)
        arrays = [f.image, f.mask, f.ignore]
        if self.star_core_weight is not None:
            arrays.append(self._simulate.star_core_weights(f, self.instrument.detector.pixel_scale_arcsec,
                                                           self.star_core_weight))
        if self.augment:
            arrays = dihedral(arrays, self._augmenter.rng())
        item = to_item(*arrays[:3])
        if self.star_core_weight is None:
            return item
        return (*item, torch.from_numpy(np.ascontiguousarray(arrays[3], np.float32))[None])  # (1, W, W)

    def __repr__(self):
        return (f"SimulatedDataset({self.n} {self.instrument.name} frames of {self.size}x{self.size}, "
                f"fields={self.fields}, filters={self.filters}, exptime_s={self.exptime_s}, "
                f"seed={self.seed}, augment={self.augment}, label_rule={self.label_rule!r})")


def _check_star_core_weight(weight):
    """None, a weight > 0 or a ``(clean, cr)`` pair of weights > 0 (as a tuple)."""
    if weight is None:
        return None
    if isinstance(weight, (list, tuple)):
        if len(weight) != 2:
            raise ValueError(f"star_core_weight must be a number > 0 or a pair (clean, cr) of them, got {weight!r}")
        return tuple(check_float(w, "star_core_weight", positive=True) for w in weight)
    return check_float(weight, "star_core_weight", positive=True)
