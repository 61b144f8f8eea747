"""HST-like frames simulated on the fly as a torch Dataset: `SimulatedDataset`.

Item ``i`` is always the same frame of `cosmiq_pyro.data.simulate`, and nothing is stored.
Items follow the Dataset contract (`cosmiq_pyro.data.items`).
"""
from __future__ import annotations

import pandas as pd
from torch.utils.data import Dataset

from ..utils.checks import check_int
from .items import WorkerRng, check_index, dihedral, to_item

__all__ = ["SimulatedDataset"]


class SimulatedDataset(Dataset):
    """HST-like frames simulated on the fly by `cosmiq_pyro.data.simulate`.

    Item ``i`` is ``simulate.simulate_frame(size=size, **simulate.frame_spec(i, ...))``: its
    field, filter, exposure time and seed depend only on ``(i, seed)``, so every epoch (and
    every process) sees the same frames and nothing is stored.

    Parameters
    ----------
    n : int
        Number of frames.
    size : int
        Frame width W (frames are W x W).
    fields, filters : sequence of str
        Field types and ACS filters drawn from (see `cosmiq_pyro.data.simulate`).
    exptime_s : float or (float, float)
        Exposure time, or the range it is drawn from, in seconds.
    seed : int
        Seed of the frame specifications and of the ``augment`` draws.
    augment : bool
        Apply a random flip / 90-degree rotation to image, mask and ignore alike.
    label_rule : {"drizcr", "sigma"}
        CR labelling rule passed to `simulate.simulate_frame` (default AstroDrizzle's driz_cr).
    mask_threshold_sigma : float
        k of the ``"sigma"`` rule, passed to `simulate.simulate_frame`.
    defects : sequence of str
        Which of ``simulate.DEFECTS`` (warm/hot pixels, bad columns, CTE trails) the frames
        have (default all), passed to `simulate.simulate_frame`.

    Attributes
    ----------
    meta : pandas.DataFrame
        One row per frame (field, filter, exptime_s, seed), known without simulating.
    """

    def __init__(self, n, size=256, fields=("EX", "GC", "GAL"),
                 filters=("F435W", "F606W", "F814W"), exptime_s=(100, 1200), seed=0,
                 augment=False, *, label_rule="drizcr", mask_threshold_sigma=1.0,
                 defects=("hot_pixels", "bad_columns", "cte_trails")):
        # imported here: galsim takes ~1 s to import and PairDataset users do not need it
        from . import simulate

        n = check_int(n, "n", minimum=1)
        self._augmenter = WorkerRng(seed)
        self.size = simulate.check_size(size)  # the simulator's own limits, checked now
        self._simulate = simulate
        self.n, self.seed = int(n), int(seed)
        self.fields, self.filters, self.exptime_s = tuple(fields), tuple(filters), exptime_s
        self.augment = bool(augment)
        self.label_rule = simulate.check_label_rule(label_rule)
        self.mask_threshold_sigma = mask_threshold_sigma
        self.defects = simulate.check_defects(defects)
        # frame_spec validates fields, filters and exptime_s
        self._specs = [simulate.frame_spec(i, self.seed, self.fields, self.filters, exptime_s)
                       for i in range(self.n)]
        self.meta = pd.DataFrame(self._specs)

    def __len__(self):
        return self.n

    def frame(self, i):
        """The full `SimulatedFrame` of item ``i`` (noiseless image, CR image, meta...)."""
        return self._simulate.simulate_frame(size=self.size, label_rule=self.label_rule,
                                             mask_threshold_sigma=self.mask_threshold_sigma,
                                             defects=self.defects,
                                             **self._specs[check_index(i, self.n)])

    def __getitem__(self, i):
        f = self.frame(i)
        image, mask, ignore = f.image, f.mask, f.ignore
        if self.augment:
            image, mask, ignore = dihedral((image, mask, ignore), self._augmenter.rng())
        return to_item(image, mask, ignore)

    def __repr__(self):
        return (f"SimulatedDataset({self.n} frames of {self.size}x{self.size}, "
                f"fields={self.fields}, filters={self.filters}, exptime_s={self.exptime_s}, "
                f"seed={self.seed}, augment={self.augment}, label_rule={self.label_rule!r})")
