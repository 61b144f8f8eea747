"""CR truth labels: AstroDrizzle's driz_cr rule (what real ACS/WFC CR masks, and so deepCR's
published weights, are made of) and the plain "CR charge above k sigma" rule.

References (keys as in `cosmiq_pyro.data.simulate`):

* **DRZ** -- spacetelescope/drizzlepac, ``drizzlepac/drizCR.py`` (``_driz_cr``),
  ``drizzlepac/quickDeriv.py`` (``qderiv``), ``drizzlepac/pars/astrodrizzle.cfgspc`` and the
  ``drizCR`` docstring (read at commit 389caf4, 2026-05).  The defaults used here:
  ``driz_cr_snr = "3.5 3.0"``, ``driz_cr_scale = "1.2 0.7"``, ``driz_cr_grow = 1``,
  ``driz_cr_ctegrow = 0`` (astrodrizzle.cfgspc, STEP 6), ``blot_addsky = True``.
  For ACS the effective gain driz_cr uses is 1 (``acsData.py``: the images are already in
  electrons).

How driz_cr decides, per exposure, with ``d`` the exposure and ``b`` the median image blotted
back onto it (in electrons, sky added back because ``blot_addsky`` is on):

1. ``t = |d - b|``; ``deriv = qderiv(b)``, the largest absolute difference between a pixel
   of ``b`` and its four edge neighbours;
2. noise ``n = sqrt(|b + backg| + rn^2)`` with ``backg`` the subtracted sky: since ``b``
   already contains the sky, the sky enters the variance twice.  We keep that, as the
   labels deepCR learned were made with it;
3. core: ``t > snr1 * n + scale1 * deriv``;
4. a pixel is CR when ``t > snr2 * n + scale2 * deriv`` and some core lies in its 3 x 3
   neighbourhood (itself included; the 3 x 3 is fixed in the code, not set by grow);
5. "grow": the mask is dilated by a ``grow`` x ``grow`` box.  With the default
   ``driz_cr_grow = 1`` the box is 1 x 1, so *the default grows nothing*: the docstring's
   "radius around each detected cosmic-ray in which more stringent detection criteria ...
   will be used" is the fixed 3 x 3 neighbour pass of step 4.  ``ctegrow = 0`` adds no
   CTE tail.

In the simulator ``d - b`` is the CR charge (`SimulatedFrame.cr_image`, expected electrons)
and ``b`` the CR-free expected image (`SimulatedFrame.noiseless`), so the labels mark the
CR as a perfect median would let driz_cr see it, without the noise of ``d`` (which in real
masks adds 3.5-sigma noise peaks and drops some CR pixels).
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from ...instruments.simulation import LABEL_RULES
from ...utils.checks import check_int

__all__ = ["DRIZ_CR_SNR", "DRIZ_CR_SCALE", "DRIZ_CR_GROW", "LABEL_RULES", "model_derivative",
           "drizcr_noise_e", "drizcr_mask", "sigma_mask", "cr_labels", "check_label_rule"]

DRIZ_CR_SNR = (3.5, 3.0)  # DRZ astrodrizzle.cfgspc: driz_cr_snr default "3.5 3.0"
DRIZ_CR_SCALE = (1.2, 0.7)  # DRZ astrodrizzle.cfgspc: driz_cr_scale default "1.2 0.7"
DRIZ_CR_GROW = 1  # DRZ astrodrizzle.cfgspc: driz_cr_grow default 1 (a 1 x 1 box: no growth)


def model_derivative(model_e):
    r"""driz_cr's ``deriv``: the largest absolute difference to the four edge neighbours.

    .. math:: D_{ij} = \max\big(|b_{ij} - b_{i\pm1,j}|,\ |b_{ij} - b_{i,j\pm1}|\big)

    taken over the neighbours inside the frame (DRZ ``qderiv`` compares frame-edge pixels
    with zeros, i.e. with the chip border; our frames are cut-outs, so we do not).

    Parameters
    ----------
    model_e : numpy.ndarray, shape (H, W)
        The CR-free model image ``b`` in electrons.

    Returns
    -------
    numpy.ndarray of float64, shape (H, W)
    """
    b = np.asarray(model_e, dtype=float)
    padded = np.pad(b, 1, mode="edge")  # an out-of-frame neighbour equals the pixel: |diff| = 0
    shifts = (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:])
    return np.max([np.abs(b - s) for s in shifts], axis=0)


def drizcr_noise_e(model_e, sky_e, read_noise_e):
    r"""driz_cr's per-pixel noise for ACS (effective gain 1, electrons).

    .. math:: n_{ij} = \sqrt{|b_{ij} + s| + \sigma_{read}^2}

    with ``b`` the model including its sky and ``s`` the subtracted sky (counted a second
    time, as in DRZ ``_driz_cr`` with ``blot_addsky`` on).

    Returns
    -------
    numpy.ndarray of float64, same shape as ``model_e``
    """
    b = np.asarray(model_e, dtype=float)
    return np.sqrt(np.abs(b + float(sky_e)) + float(read_noise_e) ** 2)


def drizcr_mask(cr_e, model_e, sky_e, read_noise_e, *, snr=DRIZ_CR_SNR, scale=DRIZ_CR_SCALE,
                grow=DRIZ_CR_GROW):
    r"""CR mask by AstroDrizzle's driz_cr rule (see the module notes).

    With :math:`t = |c|`, :math:`n` from `drizcr_noise_e` and :math:`D` from
    `model_derivative`:

    .. math::
        \mathrm{core}_{ij} &= t_{ij} > s_1 n_{ij} + a_1 D_{ij} \\
        \mathrm{cr}_{ij} &= \big(t_{ij} > s_2 n_{ij} + a_2 D_{ij}\big) \wedge
            \bigvee_{|k|\le1,|l|\le1} \mathrm{core}_{i+k,j+l}

    then dilated by a ``grow`` x ``grow`` box (``grow = 1``: unchanged).  Windows that leave
    the frame are reflected at its edge (DRZ: ``convolve2d(..., boundary='symm')``).

    Parameters
    ----------
    cr_e : numpy.ndarray, shape (H, W)
        CR charge ``d - b`` in electrons.
    model_e : numpy.ndarray, shape (H, W)
        CR-free model ``b`` in electrons, sky included.
    sky_e : float
        Subtracted sky per pixel, electrons.
    read_noise_e : float
        Read noise, electrons.
    snr, scale : (float, float)
        ``(s1, s2)`` and ``(a1, a2)``: driz_cr_snr and driz_cr_scale.
    grow : int
        driz_cr_grow (>= 1).

    Returns
    -------
    numpy.ndarray of bool, shape (H, W)
    """
    (s1, s2), (a1, a2) = _pair(snr, "snr"), _pair(scale, "scale")
    check_int(grow, "grow", minimum=1)
    t = np.abs(np.asarray(cr_e, dtype=float))
    noise = drizcr_noise_e(model_e, sky_e, read_noise_e)
    deriv = model_derivative(model_e)
    core = t > s1 * noise + a1 * deriv
    near_core = _box_any(core, 3)
    mask = (t > s2 * noise + a2 * deriv) & near_core
    return _box_any(mask, int(grow)) if grow > 1 else mask


def sigma_mask(cr_e, model_e, read_noise_e, threshold_sigma=1.0):
    r"""CR mask of CR charge above ``threshold_sigma`` times the CR-free pixel's noise.

    .. math:: c_{ij} > k \sqrt{b_{ij} + \sigma_{read}^2}

    Returns
    -------
    numpy.ndarray of bool, same shape as ``cr_e``
    """
    b = np.asarray(model_e, dtype=float)
    return np.asarray(cr_e, dtype=float) > threshold_sigma * np.sqrt(b + float(read_noise_e) ** 2)


def cr_labels(cr_e, model_e, sky_e, read_noise_e, rule="drizcr", *, mask_threshold_sigma=1.0):
    """The CR mask of one frame by ``rule``: ``"drizcr"`` (`drizcr_mask` with driz_cr's
    defaults) or ``"sigma"`` (`sigma_mask` at ``mask_threshold_sigma``)."""
    rule = check_label_rule(rule)
    if rule == "drizcr":
        return drizcr_mask(cr_e, model_e, sky_e, read_noise_e)
    return sigma_mask(cr_e, model_e, read_noise_e, mask_threshold_sigma)


def check_label_rule(rule):
    """``rule`` lower-cased if it is one of `LABEL_RULES`; otherwise ValueError."""
    if isinstance(rule, str) and rule.lower() in LABEL_RULES:
        return rule.lower()
    raise ValueError(f"label_rule must be one of {LABEL_RULES}, got {rule!r}")


def _pair(values, name):
    try:
        first, second = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (core, neighbours), "
                         f"got {values!r}") from None
    return first, second


def _box_any(mask, size):
    """True where any pixel of the ``size`` x ``size`` box (scipy's 'same' alignment,
    edges reflected) is True: DRZ's ``convolve2d(mask, ones, boundary='symm', mode='same')``
    test."""
    kernel = np.ones((size, size), dtype=np.int32)
    return signal.convolve2d(mask.astype(np.int32), kernel, mode="same", boundary="symm") > 0
