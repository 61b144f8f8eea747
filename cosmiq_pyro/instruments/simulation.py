"""The ``[simulation]`` section of a spec: how `cosmiq_pyro.data.simulate` makes the camera's frames.

Optional in a spec (`Instrument.simulation` is None without it; such a camera cannot be
simulated).  The detector constants the simulator also needs (pixel scale and pitch, CCD
thickness, gain, read noise, full well, dark current) are the spec's ``[detector]`` table: one
place for each number.  Every number of a shipped spec cites its source in the TOML file.

``[simulation]``
    ``exptime_s``: ``[low, high]`` exposure times (s) of simulated frames (log-uniform);
    ``reference_filter``: the filter colours are measured from (its ``colour_mag`` is
    ``[0, 0]``), simulated when none is named;
    ``fields``: the scenes drawn (`SCENES`: sparse extragalactic, globular cluster, nearby
    galaxy); ``label_rule``: how training labels are made from the CR charge (`LABEL_RULES`:
    AstroDrizzle's ``"drizcr"`` or the k-sigma ``"sigma"`` rule) and ``label_sigma`` (k);
    ``cr_rate_multiplier``: factor on the real CR rate for *training* sets (1 = the real rate,
    the test of record; ground-based cameras see a few tenths of a CR per 256 x 256 frame per
    minute, so their training sets record a larger factor) and ``min_cr_pixels``: the fewest
    CR pixels a training set may hold.
``[simulation.psf]``
    ``model = "hst"``: GalSim's optical PSF of a 2.4 m obscured pupil (``mirror_diameter_m``,
    ``obscuration``, ``struts``, ``strut_thickness``, ``aberration_rms_waves_at_550nm``,
    ``defocus_rms_waves_at_550nm``, ``jitter_sigma_arcsec``) convolved with charge diffusion;
    ``model = "moffat"``: a ground-based seeing PSF, ``moffat_beta`` ``[low, high]`` and a
    per-frame FWHM log-normal around each filter's ``seeing_fwhm_arcsec`` with
    ``seeing_scatter_ln`` (sigma of ln FWHM), clipped to ``seeing_fwhm_range_arcsec``.
    ``diffusion_sigma_px`` at ``diffusion_reference_nm`` (HST only): charge diffusion, scaled
    as lambda^(-1/2) to each filter (a delivered seeing FWHM already contains it).
``[simulation.cosmic_rays]``
    ``environment``: ``"space"`` (isotropic flux through the CCD: sin^2 theta uniform) or
    ``"ground"`` (secondary muons, intensity ~ cos^2 theta of the zenith angle);
    ``rate_per_cm2_s`` (all events), ``collection_efficiency`` (of the Landau deposit),
    ``diffusion_back_px`` / ``diffusion_front_px`` (sigma of CR charge made at the back / gate
    side of the CCD), ``max_length_px``, ``worm_fraction``, ``worm_charge_e``,
    ``worm_charge_scatter_ln``, ``worm_steps`` ``[low, high]``, ``spot_fraction``,
    ``spot_charge_e``, ``spot_charge_scatter_ln``.
``[simulation.defects]``
    ``hot_pixel_fraction`` ``[low, high]`` (flagged warm/hot pixels per frame),
    ``hot_pixel_model`` (`HOT_PIXEL_MODELS`: ``"acs-table-4.3"`` also adds the unflagged warm
    and newly born hot pixels of the ACS model; ``"flagged-only"``), ``bad_columns_per_256``,
    ``cte_model`` (`CTE_MODELS`: ``"acs-m10"`` parallel CTE trails, or ``"none"``).
``[simulation.filters.NAME]``
    One table per filter, in the order frames draw them: ``pivot_nm``, ``zeropoint_ab`` (AB mag
    of 1 e-/s), ``sky_e_per_s`` ``[low, high]`` per pixel, ``colour_mag`` ``[mean, spread]`` of
    (m_filter - m_reference) for stars and galaxies, and for a Moffat PSF
    ``seeing_fwhm_arcsec`` (median delivered FWHM).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields as dataclass_fields

from .fields import SpecTable

__all__ = ["SimulationSpec", "FilterSim", "PSFSim", "CosmicRaySim", "DefectSim", "SCENES",
           "LABEL_RULES", "CR_ENVIRONMENTS", "PSF_MODELS", "HOT_PIXEL_MODELS", "CTE_MODELS"]

#: Scenes the simulator draws (`cosmiq_pyro.data.simulate.scenes`).
SCENES = ("EX", "GC", "GAL")
#: Training-label rules (`cosmiq_pyro.data.simulate.labels`).
LABEL_RULES = ("drizcr", "sigma")
CR_ENVIRONMENTS = ("space", "ground")
PSF_MODELS = ("hst", "moffat")
HOT_PIXEL_MODELS = ("acs-table-4.3", "flagged-only")
CTE_MODELS = ("acs-m10", "none")


@dataclass(frozen=True)
class FilterSim:
    """One filter: ``name``, ``pivot_nm``, ``zeropoint_ab`` (AB mag giving 1 e-/s),
    ``sky_e_per_s`` (low, high) per pixel, ``colour_mag`` (mean, spread) of m - m_reference,
    ``seeing_fwhm_arcsec`` (median delivered FWHM, Moffat PSFs only; else None)."""

    name: str
    pivot_nm: float
    zeropoint_ab: float
    sky_e_per_s: tuple
    colour_mag: tuple
    seeing_fwhm_arcsec: float | None = None

    @classmethod
    def from_table(cls, name, t: SpecTable, moffat: bool):
        colour = t._get("colour_mag", True)
        if not (isinstance(colour, list) and len(colour) == 2 and
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in colour)):
            raise t.error("colour_mag", f"must be [mean, spread] in mag, got {colour!r}", TypeError)
        if colour[1] < 0:
            raise t.error("colour_mag", f"spread must be >= 0 mag, got {colour[1]}")
        spec = cls(name=name, pivot_nm=t.quantity("pivot_nm", "nm"),
                   zeropoint_ab=t.quantity("zeropoint_ab", "mag"),
                   sky_e_per_s=t.quantity_range("sky_e_per_s", "electron/s"),
                   colour_mag=(float(colour[0]), float(colour[1])),
                   seeing_fwhm_arcsec=t.quantity("seeing_fwhm_arcsec", "arcsec", required=moffat))
        if not moffat and spec.seeing_fwhm_arcsec is not None:
            raise t.error("seeing_fwhm_arcsec", "only a Moffat PSF takes a seeing FWHM")
        t.finish()
        return spec


@dataclass(frozen=True)
class PSFSim:
    """The PSF model and its parameters (see the module docstring); fields of the other
    model are None."""

    model: str
    diffusion_sigma_px: float | None = None
    diffusion_reference_nm: float | None = None
    mirror_diameter_m: float | None = None
    obscuration: float | None = None
    struts: int | None = None
    strut_thickness: float | None = None
    aberration_rms_waves_at_550nm: float | None = None
    defocus_rms_waves_at_550nm: float | None = None
    jitter_sigma_arcsec: float | None = None
    moffat_beta: tuple | None = None
    seeing_scatter_ln: float | None = None
    seeing_fwhm_range_arcsec: tuple | None = None

    def diffusion_sigma_at(self, pivot_nm) -> float:
        r"""Charge-diffusion sigma (px) at ``pivot_nm``:
        :math:`\sigma = \sigma_0 \sqrt{\lambda_0 / \lambda}`."""
        return self.diffusion_sigma_px * math.sqrt(self.diffusion_reference_nm / pivot_nm)

    @classmethod
    def from_table(cls, t: SpecTable):
        model = t.string("model", choices=PSF_MODELS)
        if model == "hst":
            spec = cls(model=model, diffusion_sigma_px=t.quantity("diffusion_sigma_px", ""),
                       diffusion_reference_nm=t.quantity("diffusion_reference_nm", "nm"),
                       mirror_diameter_m=t.quantity("mirror_diameter_m", "m"),
                       obscuration=_fraction(t, "obscuration"),
                       struts=t.integer("struts", minimum=0),
                       strut_thickness=_fraction(t, "strut_thickness"),
                       aberration_rms_waves_at_550nm=t.quantity(
                           "aberration_rms_waves_at_550nm", "", allow_zero=True),
                       defocus_rms_waves_at_550nm=t.quantity(
                           "defocus_rms_waves_at_550nm", "", allow_zero=True),
                       jitter_sigma_arcsec=t.quantity("jitter_sigma_arcsec", "arcsec"))
        else:
            beta = t.quantity_range("moffat_beta", "")
            if beta[0] <= 1.0:
                raise t.error("moffat_beta", f"must be > 1 (a Moffat profile of finite flux), "
                              f"got {beta[0]:g}")
            spec = cls(model=model, moffat_beta=beta,
                       seeing_scatter_ln=t.quantity("seeing_scatter_ln", "", allow_zero=True),
                       seeing_fwhm_range_arcsec=t.quantity_range("seeing_fwhm_range_arcsec", "arcsec"))
        t.finish()
        return spec


@dataclass(frozen=True)
class CosmicRaySim:
    """The CR environment (see the module docstring)."""

    environment: str
    rate_per_cm2_s: float
    collection_efficiency: float
    diffusion_back_px: float
    diffusion_front_px: float
    max_length_px: float
    worm_fraction: float
    worm_charge_e: float
    worm_charge_scatter_ln: float
    worm_steps: tuple
    spot_fraction: float
    spot_charge_e: float
    spot_charge_scatter_ln: float

    @classmethod
    def from_table(cls, t: SpecTable):
        spec = cls(environment=t.string("environment", choices=CR_ENVIRONMENTS),
                   rate_per_cm2_s=t.quantity("rate_per_cm2_s", "1/(cm2 s)"),
                   collection_efficiency=_fraction(t, "collection_efficiency", allow_zero=False),
                   diffusion_back_px=t.quantity("diffusion_back_px", ""),
                   diffusion_front_px=t.quantity("diffusion_front_px", ""),
                   max_length_px=t.quantity("max_length_px", ""),
                   worm_fraction=_fraction(t, "worm_fraction"),
                   worm_charge_e=t.quantity("worm_charge_e", "electron"),
                   worm_charge_scatter_ln=t.quantity("worm_charge_scatter_ln", "", allow_zero=True),
                   worm_steps=t.integers("worm_steps", count=2, minimum=1),
                   spot_fraction=_fraction(t, "spot_fraction"),
                   spot_charge_e=t.quantity("spot_charge_e", "electron"),
                   spot_charge_scatter_ln=t.quantity("spot_charge_scatter_ln", "", allow_zero=True))
        if spec.worm_steps[0] > spec.worm_steps[1]:
            raise t.error("worm_steps", f"low {spec.worm_steps[0]} is above high {spec.worm_steps[1]}")
        if spec.worm_fraction + spec.spot_fraction >= 1.0:
            raise t.error("spot_fraction", "worm_fraction + spot_fraction must be < 1 (the rest are "
                          f"straight tracks), got {spec.worm_fraction + spec.spot_fraction:g}")
        t.finish()
        return spec


@dataclass(frozen=True)
class DefectSim:
    """Detector defects (see the module docstring)."""

    hot_pixel_fraction: tuple
    hot_pixel_model: str
    bad_columns_per_256: float
    cte_model: str

    @property
    def available(self) -> tuple:
        """The defect names (`cosmiq_pyro.data.simulate.DEFECTS`) this camera has."""
        return ("hot_pixels", "bad_columns") + (("cte_trails",) if self.cte_model != "none" else ())

    @classmethod
    def from_table(cls, t: SpecTable):
        fraction = t.quantity_range("hot_pixel_fraction", "")
        if fraction[1] >= 1.0:
            raise t.error("hot_pixel_fraction", f"must be below 1, got {fraction[1]:g}")
        spec = cls(hot_pixel_fraction=fraction,
                   hot_pixel_model=t.string("hot_pixel_model", choices=HOT_PIXEL_MODELS),
                   bad_columns_per_256=t.quantity("bad_columns_per_256", "", allow_zero=True),
                   cte_model=t.string("cte_model", choices=CTE_MODELS))
        t.finish()
        return spec


@dataclass(frozen=True)
class SimulationSpec:
    """How to simulate a camera's frames (see the module docstring for each field).

    Attributes
    ----------
    exptime_s : (float, float)
    reference_filter : str
    fields : tuple of str
    label_rule : str
    label_sigma : float
    cr_rate_multiplier : float
        For training sets; frames at the real rate (1) stay the test of record.
    min_cr_pixels : int
        The fewest CR pixels a training set may hold.
    psf : PSFSim
    cosmic_rays : CosmicRaySim
    defects : DefectSim
    filters : tuple of FilterSim
        In the order frames draw them.
    """

    exptime_s: tuple
    reference_filter: str
    fields: tuple
    label_rule: str
    label_sigma: float
    cr_rate_multiplier: float
    min_cr_pixels: int
    psf: PSFSim
    cosmic_rays: CosmicRaySim
    defects: DefectSim
    filters: tuple

    @property
    def filter_names(self) -> tuple:
        return tuple(f.name for f in self.filters)

    def filter(self, name) -> FilterSim:
        """The `FilterSim` called ``name`` (case-insensitive); ValueError naming the choices."""
        if isinstance(name, str):
            for f in self.filters:
                if f.name.upper() == name.upper():
                    return f
        raise ValueError(f"filter must be one of {self.filter_names}, got {name!r}")

    @classmethod
    def from_table(cls, t: SpecTable):
        fields = t.strings("fields")
        for f in fields:
            if f not in SCENES:
                raise t.error("fields", f"{f!r} is not a scene (one of {', '.join(SCENES)})")
        psf = PSFSim.from_table(t.table("psf"))
        filters_table = t.table("filters")
        names = list(filters_table.data)
        if not names:
            raise t.error("filters", "at least one [simulation.filters.NAME] table is required")
        filters = tuple(FilterSim.from_table(name, filters_table.table(name), psf.model == "moffat")
                        for name in names)
        filters_table.finish()
        reference = t.string("reference_filter")
        if reference not in names:
            raise t.error("reference_filter", f"{reference!r} is not one of the filters {names}")
        if filters[names.index(reference)].colour_mag != (0.0, 0.0):
            raise t.error("reference_filter", f"the colours are measured from {reference!r}, so its "
                          f"colour_mag must be [0, 0], got {list(filters[names.index(reference)].colour_mag)}")
        spec = cls(exptime_s=t.quantity_range("exptime_s", "s"), reference_filter=reference,
                   fields=fields,
                   label_rule=t.string("label_rule", choices=LABEL_RULES),
                   label_sigma=t.quantity("label_sigma", ""),
                   cr_rate_multiplier=t.quantity("cr_rate_multiplier", ""),
                   min_cr_pixels=t.integer("min_cr_pixels", minimum=0),
                   psf=psf, cosmic_rays=CosmicRaySim.from_table(t.table("cosmic_rays")),
                   defects=DefectSim.from_table(t.table("defects")), filters=filters)
        t.finish()
        return spec

    def to_dict(self) -> dict:
        """The table as `from_table` reads it (None fields left out)."""
        out = _plain(self, skip=("psf", "cosmic_rays", "defects", "filters"))
        out["psf"] = _plain(self.psf)
        out["cosmic_rays"] = _plain(self.cosmic_rays)
        out["defects"] = _plain(self.defects)
        out["filters"] = {f.name: _plain(f, skip=("name",)) for f in self.filters}
        return out


def _fraction(t: SpecTable, key, allow_zero=True):
    value = t.quantity(key, "", allow_zero=allow_zero)
    if value > 1.0:
        raise t.error(key, f"must be a fraction in [0, 1], got {value:g}")
    return value


def _plain(obj, skip=()) -> dict:
    out = {}
    for f in dataclass_fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or value is None:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
