"""The ``[simulation]`` section of a spec: how the simulator makes the camera's frames.

Optional in a spec (`Instrument.simulation` is None without it).  The simulator
(`cosmiq_pyro.data.simulate`) reads it; its fields grow with the simulator (PSF, CR environment,
sky per filter, scenes, filters, defects, labelling rule).  Today:

``exptime_s``
    ``[low, high]`` exposure times (s) of simulated training frames.
``cr_rate_multiplier``
    Factor on the camera's real CR rate for training sets (> 0; 1 = the real rate, which stays
    the test of record).  Ground-based cameras see a few tenths of a CR per 256 x 256 frame
    per minute, so their training sets record a larger factor.
"""
from __future__ import annotations

from dataclasses import dataclass

from .fields import SpecTable

__all__ = ["SimulationSpec"]


@dataclass(frozen=True)
class SimulationSpec:
    """How to simulate a camera's frames (see the module docstring for each field)."""

    exptime_s: tuple
    cr_rate_multiplier: float = 1.0

    @classmethod
    def from_table(cls, t: SpecTable):
        spec = cls(exptime_s=t.quantity_range("exptime_s", "s"),
                   cr_rate_multiplier=t.quantity("cr_rate_multiplier", "", required=False) or 1.0)
        t.finish()
        return spec

    def to_dict(self) -> dict:
        return {"exptime_s": list(self.exptime_s), "cr_rate_multiplier": self.cr_rate_multiplier}
