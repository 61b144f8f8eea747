"""The `Instrument` type: what cosmiq_pyro knows about one camera, as frozen dataclasses.

A spec file (TOML) has one table per section; every field is checked when the file is read
(`Instrument.from_dict`), so a spec that loads is one the reader, the simulator and `adapt` can
use.  Sections and the fields of each (units in the names; ``[low, high]`` where the value
varies between amplifiers, CCDs or frames):

``[camera]``
    ``name``, ``description``; ``[camera.match]``: the header values that identify the camera
    (``TELESCOP``, ``INSTRUME``, ``DETECTOR``: a string or a list of accepted values; a keyword
    left out matches anything).
``[reader]``
    How its files are laid out: ``science_extnames`` (EXTNAME patterns of the science
    extensions, one per CCD or amplifier), ``dq_extname``, ``suffixes`` (file name endings of
    its calibrated frames), ``bunit`` (the pixel unit when the header has no BUNIT),
    ``gain_keywords``, ``exptime_keyword``, ``dq_ignore_bits`` (DQ bits that mark a pixel bad),
    ``dq_cr_bits`` (DQ bits of earlier CR rejection, never ignored by default).
``[detector]``
    ``ccds``, ``ccd_shape_px`` (rows, columns), ``pixel_scale_arcsec``, ``pixel_pitch_um``,
    ``ccd_thickness_um``, ``gain_e_per_adu``, ``read_noise_e``, ``saturation_e``,
    ``dark_e_per_s``.
``[models]``
    ``deepcr`` (the deepCR mask model made for the camera) and ``deepcr_input_unit`` (the unit
    it takes), ``published`` (the cosmiq_pyro model for it, a name in
    `cosmiq_pyro.models.registry.PUBLISHED`).
``[simulation]``
    Optional: how to simulate the camera's frames (`cosmiq_pyro.instruments.simulation`).
"""
from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field, fields

from .fields import SpecTable
from .simulation import SimulationSpec
from .units import UNIT_HELP, parse_bunit

__all__ = ["HeaderMatch", "ReaderSpec", "DetectorSpec", "ModelsSpec", "Instrument", "MATCH_KEYWORDS"]

#: Header keywords a spec may match on, in the order they are written.
MATCH_KEYWORDS = ("TELESCOP", "INSTRUME", "DETECTOR")


def _norm(value) -> str:
    return str(value).strip().upper()


@dataclass(frozen=True)
class HeaderMatch:
    """Header values that identify a camera (upper case; empty: any value, or none, matches).

    Attributes
    ----------
    telescop, instrume, detector : tuple of str
        Accepted values of TELESCOP, INSTRUME and DETECTOR.
    """

    telescop: tuple = ()
    instrume: tuple = ()
    detector: tuple = ()

    def score(self, lookup) -> int:
        """How many keywords match (0 when any constrained keyword is absent or differs).

        ``lookup(keyword)`` returns the header's value or None.  A spec that constrains more
        keywords scores higher, so the most specific spec wins.
        """
        n = 0
        for key in MATCH_KEYWORDS:
            accepted = getattr(self, key.lower())
            if not accepted:
                continue
            value = lookup(key)
            if value is None or _norm(value) not in accepted:
                return 0
            n += 1
        return n

    @classmethod
    def from_table(cls, t: SpecTable):
        values = {key.lower(): tuple(_norm(v) for v in t.strings(key, required=False))
                  for key in MATCH_KEYWORDS}
        t.finish()
        if not any(values.values()):
            raise t.error(", ".join(MATCH_KEYWORDS), "at least one header keyword to match is required")
        return cls(**values)


@dataclass(frozen=True)
class ReaderSpec:
    """How the camera's FITS files are laid out and what their pixels are.

    Attributes
    ----------
    science_extnames : tuple of str
        EXTNAME patterns (`fnmatch`, case-insensitive) of the extensions holding pixels: every
        matching image extension is read, in file order (all CCDs of a multi-CCD file).
    dq_extname : str or None
        EXTNAME of the data-quality extensions, matched to a science extension by EXTVER;
        None when the files carry no DQ extension.
    suffixes : tuple of str
        File name endings of the camera's calibrated frames (lower case, e.g. ``"_flc.fits"``).
    bunit : str or None
        Pixel unit assumed when a header has no BUNIT (None: the header must say, else
        electrons with a warning, as for a camera without spec).
    gain_keywords : tuple of str
        Header keywords holding the gain (e-/ADU), searched in order.
    exptime_keyword : str
        Header keyword of the exposure time (s).
    dq_ignore_bits : int
        DQ bits (OR-ed) that mark a pixel as not a measurement of the sky.
    dq_cr_bits : int
        DQ bits set by earlier cosmic-ray rejection (never in ``dq_ignore_bits``).
    """

    science_extnames: tuple
    dq_extname: str | None
    suffixes: tuple
    bunit: str | None
    gain_keywords: tuple
    exptime_keyword: str
    dq_ignore_bits: int
    dq_cr_bits: int

    def is_science(self, extname) -> bool:
        """Whether an EXTNAME is one of the science extensions."""
        name = _norm(extname or "")
        return any(fnmatch.fnmatchcase(name, _norm(p)) for p in self.science_extnames)

    @classmethod
    def from_table(cls, t: SpecTable):
        suffixes = t.strings("suffixes")
        for s in suffixes:
            if not s.startswith((".", "_")) or not s.lower().endswith((".fits", ".fits.fz", ".fits.gz", ".fit", ".fts")):
                raise t.error("suffixes", f"{s!r} is not a FITS file ending such as '_flc.fits' or '.fits.fz'")
        bunit = t.string("bunit", required=False)
        if bunit is not None and parse_bunit(bunit) is None:
            raise t.error("bunit", f"unit {bunit!r} is not a pixel unit ({UNIT_HELP})")
        spec = cls(
            science_extnames=t.strings("science_extnames"),
            dq_extname=t.string("dq_extname", required=False),
            suffixes=tuple(s.lower() for s in suffixes),
            bunit=bunit,
            gain_keywords=tuple(_norm(k) for k in t.strings("gain_keywords")),
            exptime_keyword=_norm(t.string("exptime_keyword")),
            dq_ignore_bits=t.bits("dq_ignore_bits"),
            dq_cr_bits=t.bits("dq_cr_bits"),
        )
        if spec.dq_ignore_bits & spec.dq_cr_bits:
            raise t.error("dq_ignore_bits", f"bits {spec.dq_ignore_bits & spec.dq_cr_bits} are also "
                          "in dq_cr_bits: earlier CR flags must not hide the pixels a detector is asked about")
        t.finish()
        return spec


@dataclass(frozen=True)
class DetectorSpec:
    """The CCDs' constants.  ``(low, high)`` pairs span amplifiers, CCDs or frames.

    Attributes
    ----------
    ccds : int
        Number of science CCDs.
    ccd_shape_px : (int, int)
        Pixels of one CCD, (rows, columns).
    pixel_scale_arcsec : float
        Arcseconds per pixel.
    pixel_pitch_um : float
        Pixel side (micron).
    ccd_thickness_um : (float, float)
        Thickness of the sensitive silicon (micron): the length of a CR's track follows it.
    gain_e_per_adu : float
        The default gain (e-/ADU), used when neither a keyword argument nor the header gives one.
    read_noise_e : (float, float)
        Read noise (e- rms).
    saturation_e : (float, float)
        Full well (e-).
    dark_e_per_s : float
        Dark current (e-/s per pixel).
    """

    ccds: int
    ccd_shape_px: tuple
    pixel_scale_arcsec: float
    pixel_pitch_um: float
    ccd_thickness_um: tuple
    gain_e_per_adu: float
    read_noise_e: tuple
    saturation_e: tuple
    dark_e_per_s: float

    @property
    def read_noise_mid_e(self) -> float:
        """Middle of the read-noise range (e-)."""
        return 0.5 * (self.read_noise_e[0] + self.read_noise_e[1])

    @classmethod
    def from_table(cls, t: SpecTable):
        spec = cls(
            ccds=t.integer("ccds", minimum=1),
            ccd_shape_px=t.integers("ccd_shape_px", count=2, minimum=1),
            pixel_scale_arcsec=t.quantity("pixel_scale_arcsec", "arcsec"),
            pixel_pitch_um=t.quantity("pixel_pitch_um", "um"),
            ccd_thickness_um=t.quantity_range("ccd_thickness_um", "um"),
            gain_e_per_adu=t.quantity("gain_e_per_adu", "electron/adu"),
            read_noise_e=t.quantity_range("read_noise_e", "electron"),
            saturation_e=t.quantity_range("saturation_e", "electron"),
            dark_e_per_s=t.quantity("dark_e_per_s", "electron/s", allow_zero=True),
        )
        t.finish()
        return spec


@dataclass(frozen=True)
class ModelsSpec:
    """The models made for the camera.

    Attributes
    ----------
    deepcr : str or None
        Name of deepCR's mask model for this camera (``deepCR(mask=...)``), None if none.
    deepcr_input_unit : str or None
        The pixel unit that model takes (e.g. ``"ELECTRONS"`` for ``ACS-WFC``, ``"ADU"`` for
        ``decam``); set exactly when ``deepcr`` is.
    published : str or None
        The cosmiq_pyro model published for the camera (a name in
        `cosmiq_pyro.models.registry.PUBLISHED`), None if none yet.
    """

    deepcr: str | None = None
    deepcr_input_unit: str | None = None
    published: str | None = None

    @classmethod
    def from_table(cls, t: SpecTable):
        spec = cls(deepcr=t.string("deepcr", required=False),
                   deepcr_input_unit=t.string("deepcr_input_unit", required=False),
                   published=t.string("published", required=False))
        if (spec.deepcr is None) != (spec.deepcr_input_unit is None):
            raise t.error("deepcr_input_unit", "deepcr and deepcr_input_unit go together (the unit "
                          "deepCR's model takes its input in)")
        if spec.deepcr_input_unit is not None and parse_bunit(spec.deepcr_input_unit) is None:
            raise t.error("deepcr_input_unit", f"unit {spec.deepcr_input_unit!r} is not a pixel unit "
                          f"({UNIT_HELP})")
        t.finish()
        return spec


@dataclass(frozen=True)
class Instrument:
    """One camera: header match, file layout, detector constants, models, simulation.

    Build one with `cosmiq_pyro.instruments.get_instrument` (a shipped name or a TOML path),
    or `Instrument.from_dict` (a parsed spec).  Frozen: a spec is a fact, not a setting.

    Attributes
    ----------
    name, description : str
    match : HeaderMatch
    reader : ReaderSpec
    detector : DetectorSpec
    models : ModelsSpec
    simulation : SimulationSpec or None
        How to simulate its frames, when the spec says.
    source : str
        Where the spec came from (a file path); not part of equality.
    """

    name: str
    description: str
    match: HeaderMatch
    reader: ReaderSpec
    detector: DetectorSpec
    models: ModelsSpec
    simulation: SimulationSpec | None = None
    source: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, data, origin="<dict>", source=""):
        """An `Instrument` from a parsed spec (the dict `tomllib` gives); one-line errors name
        ``origin`` and the field."""
        top = SpecTable(data, origin, "")
        camera = top.table("camera")
        name = camera.string("name")
        description = camera.string("description")
        match = HeaderMatch.from_table(camera.table("match"))
        camera.finish()
        reader = ReaderSpec.from_table(top.table("reader"))
        detector = DetectorSpec.from_table(top.table("detector"))
        models_table = top.table("models", required=False)
        models = ModelsSpec() if models_table is None else ModelsSpec.from_table(models_table)
        sim_table = top.table("simulation", required=False)
        simulation = None if sim_table is None else SimulationSpec.from_table(sim_table)
        top.finish()
        return cls(name=name, description=description, match=match, reader=reader,
                   detector=detector, models=models, simulation=simulation, source=str(source))

    def to_dict(self) -> dict:
        """The spec as the nested dict `from_dict` reads (None fields left out): a round trip
        ``Instrument.from_dict(inst.to_dict()) == inst``."""
        out = {"camera": {"name": self.name, "description": self.description,
                          "match": {key: list(getattr(self.match, key.lower()))
                                    for key in MATCH_KEYWORDS if getattr(self.match, key.lower())}},
               "reader": _section(self.reader), "detector": _section(self.detector)}
        out["reader"]["dq_ignore_bits"] = _bit_list(self.reader.dq_ignore_bits)
        out["reader"]["dq_cr_bits"] = _bit_list(self.reader.dq_cr_bits)
        models = _section(self.models)
        if models:
            out["models"] = models
        if self.simulation is not None:
            out["simulation"] = self.simulation.to_dict()
        return out

    def to_toml(self) -> str:
        """The spec as TOML text (no comments: the shipped files carry the sources)."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def digest(self) -> str:
        """First 16 hex digits of the SHA-256 of `to_toml`: equal for equal specs whatever their
        comments, layout or file, different when any value differs (for provenance)."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()[:16]


def _section(obj) -> dict:
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _bit_list(mask: int) -> list:
    return [1 << k for k in range(mask.bit_length()) if mask >> k & 1]

