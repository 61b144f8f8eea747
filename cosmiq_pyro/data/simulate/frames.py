"""One simulated frame of a camera: sources through the optics, sky, detector defects (warm and
hot pixels, bad columns), cosmic rays, read-out with CTE trails, and the CR truth mask."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field as dataclass_field

import numpy as np
import scipy.fft

from .camera import DEFAULT_INSTRUMENT, resolve_instrument
from .cosmic_rays import _cosmic_rays
from .cte import _apply_cte, _cte_setup
from .detector import _bad_columns, _digitise, _expose
from .hot_pixels import _hot_pixels
from .labels import check_label_rule, cr_labels
from .optics import PSF_STAMP, _render, moffat_draw, psf_key
from .scenes import FIELDS, _count_inside, _inside, _Scene, _scene_ex, _scene_gal, _scene_gc
from .validation import (
    _check_defects, _check_exptime, _check_field, _check_multiplier, _check_seed,
    check_size,
)

__all__ = ["DEFECTS", "check_defects", "SimulatedFrame", "simulate_frame"]

#: What real _flt/_flc frames contain besides sources, sky and CRs: warm and hot pixels
#: (`hot_pixels`), bad columns (`detector`), CTE trails (`cte`); a camera has those its spec's
#: ``[simulation.defects]`` models (all three for ACS/WFC, on by default).
DEFECTS = ("hot_pixels", "bad_columns", "cte_trails")


def check_defects(defects, instrument=DEFAULT_INSTRUMENT):
    """``defects`` as a tuple of names from `DEFECTS` (in that order) that ``instrument``'s spec
    models; None: all of those.  Otherwise TypeError or ValueError naming ``defects``."""
    available = resolve_instrument(instrument).simulation.defects.available
    if defects is None:
        return available
    names = _check_defects(defects, DEFECTS)
    missing = [d for d in names if d not in available]
    if missing:
        raise ValueError(f"defects: {missing[0]!r} is not modelled for this camera "
                         f"(its spec has {available})")
    return names


@dataclass
class SimulatedFrame:
    """One simulated frame.  All images are ``(size, size)``; charges in electrons.

    Attributes
    ----------
    image : numpy.ndarray of float32
        What the detector reads (sources + sky + dark + warm/hot pixels + CRs, noise,
        saturation, CTE trails, ADC), like an _flc frame.
    mask : numpy.ndarray of bool
        CR truth by ``meta["label_rule"]``: AstroDrizzle's driz_cr rule (`labels.drizcr_mask`)
        or ``cr_image > mask_threshold_sigma * sqrt(noiseless + read_noise_e**2)``.
    ignore : numpy.ndarray of bool
        What a real frame's DQ array flags: warm and hot pixels known to the superdark
        (dark > 0.06 e-/s), bad columns, saturated pixels and their bleed trails.  Warm
        pixels below 0.06 e-/s and hot pixels born after the superdark are not flagged: they
        stay in the image with label 0.
    cr_image : numpy.ndarray of float32
        The CR charge alone, expected electrons before Poisson noise, including its CTE
        trail: ``T(noiseless_0 + cr_0) - T(noiseless_0)`` with T the read-out (`cte`).
    noiseless : numpy.ndarray of float32
        Sources + sky + dark current (incl. warm/hot pixels and bad columns) after read-out
        (CTE trails of stars and hot pixels included), no noise, no CRs.
    sky_e : float
        Sky level per pixel, electrons.
    star_xy : numpy.ndarray of float, shape (n, 2)
        Positions of the point sources (stars; in GAL fields also the point-like clusters)
        whose centres fall on the frame: x (column), y (row) in frame pixels, pixel centres at
        integers (the peak pixel is ``(round(y), round(x))``).  ``n`` is ``meta["n_stars"]``.
    star_e : numpy.ndarray of float, shape (n,)
        Their total expected charge (electrons, before the PSF spreads it), same order.
    meta : dict
        instrument (the spec's camera name), cr_rate_multiplier (1: the real CR rate),
        seeing_fwhm_arcsec and moffat_beta (None for an HST PSF),
        field, filter, exptime_s, seed, n_stars, n_galaxies, n_crs, read_noise_e,
        gain_e_per_adu, full_well_e, ccd_thickness_um, label_rule, mask_threshold_sigma
        (used by the "sigma" rule only), n_cr_px (pixels in ``mask``), defects (the names
        joined by ","), n_hot_flagged, n_warm_unflagged, n_hot_new_unflagged,
        n_bad_columns, n_bad_column_px, cte_jd, cte_trap_density, cte_rows_to_register,
        cte_readout_towards_row0 (None, 0 or NaN for a defect switched off) and
        n_cte_trail_px (pixels whose charge the read-out moved by more than their noise).
    """

    image: np.ndarray
    mask: np.ndarray
    ignore: np.ndarray
    cr_image: np.ndarray
    noiseless: np.ndarray
    sky_e: float
    meta: dict = dataclass_field(default_factory=dict)
    star_xy: np.ndarray = dataclass_field(default_factory=lambda: np.zeros((0, 2)))
    star_e: np.ndarray = dataclass_field(default_factory=lambda: np.zeros(0))


def _pixel_defects(shape, exptime_s, seed, defects, spec):
    """Warm/hot pixels and bad columns (``spec``: the `DefectSim`), each from its own random
    stream (seed, 3) and (seed, 4): extra dark charge (e-), response to light, flagged pixels
    and counts."""
    dark_extra, response = np.zeros(shape), np.ones(shape)
    flagged = np.zeros(shape, bool)
    counts = dict(n_hot_flagged=0, n_warm_unflagged=0, n_hot_new_unflagged=0, n_bad_columns=0,
                  n_bad_column_px=0)
    if "hot_pixels" in defects:
        hot_e, hot_flagged, hot_counts = _hot_pixels(
            shape, exptime_s, spec.hot_pixel_fraction, spec.hot_pixel_model == "acs-table-4.3",
            np.random.default_rng([seed, 3]))
        dark_extra += hot_e
        flagged |= hot_flagged
        counts.update(hot_counts)
    if "bad_columns" in defects:
        col_e, response, columns, n_columns = _bad_columns(shape, exptime_s, spec.bad_columns_per_256,
                                                           np.random.default_rng([seed, 4]))
        dark_extra += col_e
        flagged |= columns
        counts.update(n_bad_columns=n_columns, n_bad_column_px=int(columns.sum()))
    return dark_extra, response, flagged, counts


def simulate_frame(size=256, field="EX", filter=None, exptime_s=500.0, seed=0, *,
                   label_rule=None, mask_threshold_sigma=None, defects=None,
                   instrument=DEFAULT_INSTRUMENT, cr_rate_multiplier=1.0):
    r"""Simulate one frame of a camera (ACS/WFC unless ``instrument`` says) with cosmic rays.

    The camera's spec gives the detector (``[detector]``: pixel scale and pitch, CCD thickness,
    gain, read noise, full well, dark current) and everything else simulated
    (``[simulation]``: PSF, CR environment, filters and their sky, defects, labelling rule);
    `cosmiq_pyro.instruments.simulation` describes its fields.

    Parameters
    ----------
    size : int
        Frame width and height in pixels (>= 16).
    field : {"EX", "GC", "GAL", "mixed"}
        Sparse extragalactic field, crowded globular-cluster field, resolved nearby galaxy,
        or one of the three drawn from ``seed`` (recorded in ``meta["field"]``).
    filter : str, optional
        A filter of the spec (ACS/WFC: F435W, F606W, F814W; WFC3/UVIS: F438W, F606W, F814W;
        DECam: g, r, i, z, Y): sets the PSF, zeropoint and sky rate.  Default: the spec's
        ``reference_filter`` (F606W, F606W, r).
    exptime_s : float
        Exposure time in seconds (> 0); scales sources, sky, dark and the number of CRs.
    seed : int
        Non-negative seed; the same seed gives identical arrays.
    label_rule : {"drizcr", "sigma"}, optional
        How the CR ``mask`` is made from ``cr_image`` (c) and ``noiseless`` (n), both as
        returned (float32); default the spec's (ACS/WFC and WFC3/UVIS: ``"drizcr"``, DECam:
        ``"sigma"``).  ``"drizcr"``: AstroDrizzle's driz_cr with its default
        parameters, the rule behind real ACS/WFC CR masks and deepCR's training labels
        (`cosmiq_pyro.data.simulate.labels.drizcr_mask`): roughly ``c > 3.5 sigma + 1.2 |grad n|``
        for cores and ``c > 3 sigma + 0.7 |grad n|`` for their 3 x 3 neighbours.  ``"sigma"``:
        every pixel whose CR charge exceeds ``mask_threshold_sigma`` sigma of its own noise
        without the CR,

        .. math:: c_{ij} > k \sqrt{n_{ij} + \sigma_{read}^2}.
    mask_threshold_sigma : float, optional
        k of the ``"sigma"`` rule (ignored by ``"drizcr"``); default the spec's ``label_sigma``.
    defects : sequence of {"hot_pixels", "bad_columns", "cte_trails"}, optional
        Which of `DEFECTS` the frame has (default: all the spec models; ``()`` for none).  Each
        is drawn from its own random stream, so switching one off leaves the others and the
        CRs as they were.
    instrument : str, os.PathLike or Instrument
        The camera: a shipped spec's name (``"ACS-WFC"``, ``"WFC3-UVIS"``, ``"DECam"``), the
        path of a TOML spec, or an `cosmiq_pyro.instruments.Instrument`; its spec must have a
        ``[simulation]`` section.
    cr_rate_multiplier : float
        Factor on the spec's CR rate (> 0; recorded in ``meta``).  1, the default, is the real
        rate: frames to test on keep it; training sets of a ground-based camera, whose CRs are
        sparse, use the spec's ``cr_rate_multiplier``.

    Returns
    -------
    SimulatedFrame
        ``image``, ``mask``, ``ignore``, ``cr_image``, ``noiseless`` of shape (size, size),
        ``sky_e`` and ``meta``.

    Raises
    ------
    ValueError
        On an unknown field, filter, label_rule or defect (or one the camera lacks), size < 16,
        exptime_s <= 0, a negative seed, a non-positive mask_threshold_sigma or
        cr_rate_multiplier, or a spec without ``[simulation]``.
    TypeError
        On arguments of the wrong type.
    """
    inst = resolve_instrument(instrument)
    det, sim = inst.detector, inst.simulation
    size = check_size(size)
    field = _check_field(field)
    band = sim.filter(sim.reference_filter if filter is None else filter)
    filter = band.name
    exptime_s = _check_exptime(exptime_s)
    seed = _check_seed(seed)
    label_rule = check_label_rule(sim.label_rule if label_rule is None else label_rule)
    defects = check_defects(defects, inst)
    cr_rate_multiplier = _check_multiplier(cr_rate_multiplier)
    if mask_threshold_sigma is None:
        mask_threshold_sigma = sim.label_sigma
    if not isinstance(mask_threshold_sigma, numbers.Real) or not mask_threshold_sigma > 0:
        raise ValueError(f"mask_threshold_sigma must be a positive number, "
                         f"got {mask_threshold_sigma!r}")
    rng = np.random.default_rng(seed)
    if field == "mixed":
        field = FIELDS[int(rng.integers(len(FIELDS)))]

    read_noise_e = float(rng.uniform(*det.read_noise_e))
    full_well_e = float(rng.uniform(*det.saturation_e))
    thickness_um = float(rng.uniform(*det.ccd_thickness_um))
    lo, hi = np.log(band.sky_e_per_s)
    sky_e = float(np.exp(rng.uniform(lo, hi)) * exptime_s)
    seeing = dict(seeing_fwhm_arcsec=None, moffat_beta=None)
    if sim.psf.model == "moffat":  # the frame's seeing, from its own stream
        fwhm, beta = moffat_draw(sim.psf, band, np.random.default_rng([seed, 6]))
        seeing = dict(seeing_fwhm_arcsec=fwhm, moffat_beta=beta)
    psf = psf_key(inst, band, seeing["seeing_fwhm_arcsec"], seeing["moffat_beta"])

    # sources, on a grid padded by half a PSF stamp so light from outside the frame enters
    pad = PSF_STAMP // 2
    padded = (scipy.fft.next_fast_len(size + 2 * pad, real=True),) * 2
    scene = _Scene(shape=padded, pad=pad, size=size, pixel_scale_arcsec=det.pixel_scale_arcsec)
    scene_rng = np.random.default_rng([seed, 1])
    if field == "EX":
        _scene_ex(scene, band, exptime_s, scene_rng)
    elif field == "GC":
        _scene_gc(scene, band, exptime_s, scene_rng)
    else:
        _scene_gal(scene, band, exptime_s, scene_rng)
    sources = _render(scene, psf)[pad:pad + size, pad:pad + size]
    star_xy = np.concatenate(scene.star_xy) if scene.star_xy else np.zeros((0, 2))
    star_e = np.concatenate(scene.star_e) if scene.star_e else np.zeros(0)
    on_frame = _inside(star_xy, pad, size)
    n_stars = int(on_frame.sum())
    galaxy_xy = np.concatenate(scene.galaxy_xy) if scene.galaxy_xy else np.zeros((0, 2))
    n_galaxies = _count_inside(galaxy_xy, pad, size) + scene.n_hosts

    shape = (size, size)
    dark_extra, response, defect, counts = _pixel_defects(shape, exptime_s, seed, defects,
                                                          sim.defects)
    cte = dict(cte_jd=float("nan"), cte_trap_density=0.0, cte_rows_to_register=0,
               cte_readout_towards_row0=None)
    if "cte_trails" in defects:
        cte = _cte_setup(size, np.random.default_rng([seed, 5]))

    before = ((sources + sky_e) * response + det.dark_e_per_s * exptime_s + dark_extra)
    cr_before, n_crs = _cosmic_rays(shape, exptime_s, thickness_um, det.pixel_pitch_um,
                                    sim.cosmic_rays, rng, cr_rate_multiplier)
    charge, saturated = _expose(before + cr_before, full_well_e, rng)
    if "cte_trails" in defects:
        # one read-out pass for the charge and the two expected images, side by side
        trailed = _apply_cte(np.concatenate([charge, before, before + cr_before], axis=1), cte)
        charge, noiseless, with_cr = np.split(trailed, 3, axis=1)
        cr_image = with_cr - noiseless
        noise = np.sqrt(np.maximum(before + cr_before, 0.0) + read_noise_e**2)
        n_trail = int((np.abs(with_cr - before - cr_before) > noise).sum())
    else:
        noiseless, cr_image, n_trail = before, cr_before, 0
    image = _digitise(charge, read_noise_e, det.gain_e_per_adu, rng)
    noiseless32 = noiseless.astype(np.float32)
    cr32 = cr_image.astype(np.float32)

    mask = cr_labels(cr32, noiseless32, sky_e, read_noise_e, label_rule,
                     mask_threshold_sigma=mask_threshold_sigma)
    ignore = defect | saturated
    meta = dict(instrument=inst.name, field=field, filter=filter, exptime_s=exptime_s, seed=seed,
                n_stars=n_stars, n_galaxies=n_galaxies, cr_rate_multiplier=cr_rate_multiplier,
                **seeing,
                n_crs=int(n_crs), read_noise_e=read_noise_e, gain_e_per_adu=det.gain_e_per_adu,
                sky_e=sky_e, full_well_e=full_well_e, ccd_thickness_um=thickness_um,
                label_rule=label_rule, mask_threshold_sigma=float(mask_threshold_sigma),
                n_cr_px=int(mask.sum()), defects=",".join(defects), **counts, **cte,
                n_cte_trail_px=n_trail)
    return SimulatedFrame(image=image, mask=mask, ignore=ignore, cr_image=cr32,
                          noiseless=noiseless32, sky_e=sky_e, meta=meta,
                          star_xy=star_xy[on_frame] - pad, star_e=star_e[on_frame])
