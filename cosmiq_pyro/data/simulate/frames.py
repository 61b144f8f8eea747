"""One simulated frame: sources through the optics, sky, detector defects (warm and hot
pixels, bad columns), cosmic rays, read-out with CTE trails, and the CR truth mask."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field as dataclass_field

import numpy as np
import scipy.fft

from .cosmic_rays import CCD_THICKNESS_UM, _cosmic_rays
from .cte import _apply_cte, _cte_setup
from .detector import (
    DARK_E_PER_S, GAIN_E_PER_ADU, READ_NOISE_RANGE_E, SATURATION_RANGE_E, _bad_columns, _digitise,
    _expose,
)
from .filters import FILTERS
from .hot_pixels import _hot_pixels
from .labels import check_label_rule, cr_labels
from .optics import PSF_STAMP, _render
from .scenes import FIELDS, _count_inside, _Scene, _scene_ex, _scene_gal, _scene_gc
from .validation import (
    _check_defects, _check_exptime, _check_field, _check_filter, _check_seed, check_size,
)

__all__ = ["DEFECTS", "check_defects", "SimulatedFrame", "simulate_frame"]

#: What real _flt/_flc frames contain besides sources, sky and CRs (all on by default):
#: warm and hot pixels (`hot_pixels`), bad columns (`detector`), CTE trails (`cte`).
DEFECTS = ("hot_pixels", "bad_columns", "cte_trails")


def check_defects(defects):
    """``defects`` as a tuple of names from `DEFECTS` (in that order); otherwise TypeError
    or ValueError naming ``defects``."""
    return _check_defects(defects, DEFECTS)


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
    meta : dict
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


def _pixel_defects(shape, exptime_s, seed, defects):
    """Warm/hot pixels and bad columns, each from its own random stream (seed, 3) and
    (seed, 4): extra dark charge (e-), response to light, flagged pixels and counts."""
    dark_extra, response = np.zeros(shape), np.ones(shape)
    flagged = np.zeros(shape, bool)
    counts = dict(n_hot_flagged=0, n_warm_unflagged=0, n_hot_new_unflagged=0, n_bad_columns=0,
                  n_bad_column_px=0)
    if "hot_pixels" in defects:
        hot_e, hot_flagged, hot_counts = _hot_pixels(shape, exptime_s,
                                                     np.random.default_rng([seed, 3]))
        dark_extra += hot_e
        flagged |= hot_flagged
        counts.update(hot_counts)
    if "bad_columns" in defects:
        col_e, response, columns, n_columns = _bad_columns(shape, exptime_s,
                                                           np.random.default_rng([seed, 4]))
        dark_extra += col_e
        flagged |= columns
        counts.update(n_bad_columns=n_columns, n_bad_column_px=int(columns.sum()))
    return dark_extra, response, flagged, counts


def simulate_frame(size=256, field="EX", filter="F606W", exptime_s=500.0, seed=0, *,
                   label_rule="drizcr", mask_threshold_sigma=1.0, defects=DEFECTS):
    r"""Simulate one ACS/WFC-like frame with cosmic rays.

    Parameters
    ----------
    size : int
        Frame width and height in pixels (>= 16).
    field : {"EX", "GC", "GAL", "mixed"}
        Sparse extragalactic field, crowded globular-cluster field, resolved nearby galaxy,
        or one of the three drawn from ``seed`` (recorded in ``meta["field"]``).
    filter : {"F435W", "F606W", "F814W"}
        ACS/WFC filter: sets the PSF wavelength, zeropoint, sky rate and charge diffusion.
    exptime_s : float
        Exposure time in seconds (> 0); scales sources, sky, dark and the number of CRs.
    seed : int
        Non-negative seed; the same seed gives identical arrays.
    label_rule : {"drizcr", "sigma"}
        How the CR ``mask`` is made from ``cr_image`` (c) and ``noiseless`` (n), both as
        returned (float32).  ``"drizcr"`` (default): AstroDrizzle's driz_cr with its default
        parameters, the rule behind real ACS/WFC CR masks and deepCR's training labels
        (`cosmiq_pyro.data.simulate.labels.drizcr_mask`): roughly ``c > 3.5 sigma + 1.2 |grad n|``
        for cores and ``c > 3 sigma + 0.7 |grad n|`` for their 3 x 3 neighbours.  ``"sigma"``:
        every pixel whose CR charge exceeds ``mask_threshold_sigma`` sigma of its own noise
        without the CR,

        .. math:: c_{ij} > k \sqrt{n_{ij} + \sigma_{read}^2}.
    mask_threshold_sigma : float
        k of the ``"sigma"`` rule (ignored by ``"drizcr"``).
    defects : sequence of {"hot_pixels", "bad_columns", "cte_trails"}
        Which of `DEFECTS` the frame has (default all; ``()`` for none).  Each is drawn from
        its own random stream, so switching one off leaves the others and the CRs as they
        were.

    Returns
    -------
    SimulatedFrame
        ``image``, ``mask``, ``ignore``, ``cr_image``, ``noiseless`` of shape (size, size),
        ``sky_e`` and ``meta``.

    Raises
    ------
    ValueError
        On an unknown field, filter, label_rule or defect, size < 16, exptime_s <= 0, a negative
        seed or a non-positive mask_threshold_sigma.
    TypeError
        On arguments of the wrong type.
    """
    size = check_size(size)
    field = _check_field(field)
    filter = _check_filter(filter)
    exptime_s = _check_exptime(exptime_s)
    seed = _check_seed(seed)
    label_rule = check_label_rule(label_rule)
    defects = check_defects(defects)
    if not isinstance(mask_threshold_sigma, numbers.Real) or not mask_threshold_sigma > 0:
        raise ValueError(f"mask_threshold_sigma must be a positive number, "
                         f"got {mask_threshold_sigma!r}")
    rng = np.random.default_rng(seed)
    if field == "mixed":
        field = FIELDS[int(rng.integers(len(FIELDS)))]

    read_noise_e = float(rng.uniform(*READ_NOISE_RANGE_E))
    full_well_e = float(rng.uniform(*SATURATION_RANGE_E))
    thickness_um = float(rng.uniform(*CCD_THICKNESS_UM))
    lo, hi = np.log(FILTERS[filter].sky_e_per_s)
    sky_e = float(np.exp(rng.uniform(lo, hi)) * exptime_s)

    # sources, on a grid padded by half a PSF stamp so light from outside the frame enters
    pad = PSF_STAMP // 2
    padded = (scipy.fft.next_fast_len(size + 2 * pad, real=True),) * 2
    scene = _Scene(shape=padded, pad=pad, size=size)
    scene_rng = np.random.default_rng([seed, 1])
    if field == "EX":
        _scene_ex(scene, filter, exptime_s, scene_rng)
    elif field == "GC":
        _scene_gc(scene, filter, exptime_s, scene_rng)
    else:
        _scene_gal(scene, filter, exptime_s, scene_rng)
    sources = _render(scene, filter)[pad:pad + size, pad:pad + size]
    star_xy = np.concatenate(scene.star_xy) if scene.star_xy else np.zeros((0, 2))
    n_stars = _count_inside(star_xy, pad, size)
    galaxy_xy = np.concatenate(scene.galaxy_xy) if scene.galaxy_xy else np.zeros((0, 2))
    n_galaxies = _count_inside(galaxy_xy, pad, size) + scene.n_hosts

    shape = (size, size)
    dark_extra, response, defect, counts = _pixel_defects(shape, exptime_s, seed, defects)
    cte = dict(cte_jd=float("nan"), cte_trap_density=0.0, cte_rows_to_register=0,
               cte_readout_towards_row0=None)
    if "cte_trails" in defects:
        cte = _cte_setup(size, np.random.default_rng([seed, 5]))

    before = ((sources + sky_e) * response + DARK_E_PER_S * exptime_s + dark_extra)
    cr_before, n_crs = _cosmic_rays(shape, exptime_s, thickness_um, rng)
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
    image = _digitise(charge, read_noise_e, rng)
    noiseless32 = noiseless.astype(np.float32)
    cr32 = cr_image.astype(np.float32)

    mask = cr_labels(cr32, noiseless32, sky_e, read_noise_e, label_rule,
                     mask_threshold_sigma=mask_threshold_sigma)
    ignore = defect | saturated
    meta = dict(field=field, filter=filter, exptime_s=exptime_s, seed=seed,
                n_stars=n_stars, n_galaxies=n_galaxies,
                n_crs=int(n_crs), read_noise_e=read_noise_e, gain_e_per_adu=GAIN_E_PER_ADU,
                sky_e=sky_e, full_well_e=full_well_e, ccd_thickness_um=thickness_um,
                label_rule=label_rule, mask_threshold_sigma=float(mask_threshold_sigma),
                n_cr_px=int(mask.sum()), defects=",".join(defects), **counts, **cte,
                n_cte_trail_px=n_trail)
    return SimulatedFrame(image=image, mask=mask, ignore=ignore, cr_image=cr32,
                          noiseless=noiseless32, sky_e=sky_e, meta=meta)
