"""Cameras as data: one TOML spec per camera, read into a frozen `Instrument`.

Example::

    from cosmiq_pyro.instruments import get_instrument, instrument_for_header, list_instruments
    list_instruments()                                   # the shipped specs
    acs = get_instrument("ACS-WFC")                      # or get_instrument("my_camera.toml")
    acs.detector.pixel_scale_arcsec, acs.reader.dq_ignore_bits, acs.models.published
    instrument_for_header(fits.getheader("j8xi01a1q_flc.fits"))   # -> Instrument or None

What a spec holds, where its numbers come from and how to write one: docs/cameras.md and
`cosmiq_pyro.instruments.schema`.  This subpackage imports nothing from the rest of
cosmiq_pyro but `utils`: the reader (`cosmiq_pyro.io.fitsio`), the simulator and the model
tools read it.
"""
from .fields import SpecError
from .loader import (SPEC_DIR, get_instrument, instrument_for_deepcr, instrument_for_header, list_instruments,
                     read_spec, spec_path)
from .schema import DetectorSpec, HeaderMatch, Instrument, ModelsSpec, ReaderSpec
from .simulation import SimulationSpec

__all__ = ["Instrument", "HeaderMatch", "ReaderSpec", "DetectorSpec", "ModelsSpec", "SimulationSpec",
           "SpecError", "get_instrument", "instrument_for_header", "instrument_for_deepcr", "list_instruments",
           "read_spec", "spec_path", "SPEC_DIR"]
