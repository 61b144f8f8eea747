"""One simulated frame: sources through the optics, sky, detector defects, cosmic rays,
read-out, and the CR truth mask."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field as dataclass_field

import numpy as np
import scipy.fft

from .cosmic_rays import CCD_THICKNESS_UM, _cosmic_rays
from .detector import (
    DARK_E_PER_S, GAIN_E_PER_ADU, READ_NOISE_RANGE_E, SATURATION_RANGE_E, _detector_defects,
    _read_out,
)
from .filters import FILTERS
from .labels import check_label_rule, cr_labels
from .optics import PSF_STAMP, _render
from .scenes import FIELDS, _count_inside, _Scene, _scene_ex, _scene_gal, _scene_gc
from .validation import _check_exptime, _check_field, _check_filter, _check_seed, check_size


@dataclass
class SimulatedFrame:
    """One simulated frame.  All images are ``(size, size)``; charges in electrons.

    Attributes
    ----------
    image : numpy.ndarray of float32
        What the detector reads (sources + sky + dark + CRs, noise, saturation, ADC).
    mask : numpy.ndarray of bool
        CR truth by ``meta["label_rule"]``: AstroDrizzle's driz_cr rule (`labels.drizcr_mask`)
        or ``cr_image > mask_threshold_sigma * sqrt(noiseless + read_noise_e**2)``.
    ignore : numpy.ndarray of bool
        Hot pixels, bad columns, saturated pixels and their bleed trails.
    cr_image : numpy.ndarray of float32
        The CR charge alone (expected electrons, before Poisson noise).
    noiseless : numpy.ndarray of float32
        Sources + sky + dark current (incl. hot pixels and bad columns), no noise, no CRs.
    sky_e : float
        Sky level per pixel, electrons.
    meta : dict
        field, filter, exptime_s, seed, n_stars, n_galaxies, n_crs, read_noise_e,
        gain_e_per_adu, full_well_e, ccd_thickness_um, label_rule, mask_threshold_sigma
        (used by the "sigma" rule only), n_cr_px (pixels in ``mask``).
    """

    image: np.ndarray
    mask: np.ndarray
    ignore: np.ndarray
    cr_image: np.ndarray
    noiseless: np.ndarray
    sky_e: float
    meta: dict = dataclass_field(default_factory=dict)


def simulate_frame(size=256, field="EX", filter="F606W", exptime_s=500.0, seed=0, *,
                   label_rule="drizcr", mask_threshold_sigma=1.0):
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
        (`cosmiq_pyro.data.simulate.labels.drizcr_mask`): roughly c > 3.5 sigma + 1.2 |grad n|
        for cores and c > 3 sigma + 0.7 |grad n| for their 3 x 3 neighbours.  ``"sigma"``:
        every pixel whose CR charge exceeds ``mask_threshold_sigma`` sigma of its own noise
        without the CR,

        .. math:: c_{ij} > k \sqrt{n_{ij} + \sigma_{read}^2}.
    mask_threshold_sigma : float
        k of the ``"sigma"`` rule (ignored by ``"drizcr"``).

    Returns
    -------
    SimulatedFrame
        ``image``, ``mask``, ``ignore``, ``cr_image``, ``noiseless`` of shape (size, size),
        ``sky_e`` and ``meta``.

    Raises
    ------
    ValueError
        On an unknown field, filter or label_rule, size < 16, exptime_s <= 0, a negative
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

    dark_extra, response, defect = _detector_defects((size, size), exptime_s, rng)
    noiseless = ((sources + sky_e) * response + DARK_E_PER_S * exptime_s + dark_extra)
    noiseless32 = noiseless.astype(np.float32)
    cr_image, n_crs = _cosmic_rays((size, size), exptime_s, thickness_um, rng)
    cr32 = cr_image.astype(np.float32)

    image, saturated = _read_out(noiseless + cr_image, full_well_e, read_noise_e, rng)

    mask = cr_labels(cr32, noiseless32, sky_e, read_noise_e, label_rule,
                     mask_threshold_sigma=mask_threshold_sigma)
    ignore = defect | saturated
    meta = dict(field=field, filter=filter, exptime_s=exptime_s, seed=seed,
                n_stars=n_stars, n_galaxies=n_galaxies,
                n_crs=int(n_crs), read_noise_e=read_noise_e, gain_e_per_adu=GAIN_E_PER_ADU,
                sky_e=sky_e, full_well_e=full_well_e, ccd_thickness_um=thickness_um,
                label_rule=label_rule, mask_threshold_sigma=float(mask_threshold_sigma),
                n_cr_px=int(mask.sum()))
    return SimulatedFrame(image=image, mask=mask, ignore=ignore, cr_image=cr32,
                          noiseless=noiseless32, sky_e=sky_e, meta=meta)
