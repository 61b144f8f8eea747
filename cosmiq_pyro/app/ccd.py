"""The astropy ecosystem's entry point: `cosmicray_cosmiq` on `~astropy.nddata.CCDData`.

Shaped like ccdproc's ``cosmicray_lacosmic(ccd, ...) -> CCDData``: the cosmic-ray mask is
merged into the returned frame's ``mask``, the input is left untouched, and a pipeline that
calls ccdproc's function can call this one instead.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData

from .._version import __version__
from ..utils.checks import check_float, check_seed
from ..inference.predictive import predict, validated_image
from .automodel import choose_model
from .modelcache import DEFAULT_MODEL

__all__ = ["cosmicray_cosmiq"]


def cosmicray_cosmiq(ccd: CCDData, model=DEFAULT_MODEL, T: int | None = None, threshold: float = 0.5, gain=None,
                     seed: int = 0, tile: int = 1024, device=None, method: str | None = None) -> CCDData:
    """Find cosmic rays in a `~astropy.nddata.CCDData` frame; return a copy with them masked.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        A 2-D frame with a unit: ``electron`` (any multiple of it), or ``adu`` together with
        ``gain``.  Pixels already in ``ccd.mask`` are treated as bad (the model's ``ignore``),
        as are non-finite pixels.
    model : str or os.PathLike
        ``"auto"`` (`DEFAULT_MODEL`): the model of the camera recognised from ``ccd.meta`` (its
        spec's ``[camera.match]`` keywords, e.g. ``INSTRUME = 'DECam'``), else the shipped model
        with the lowest novelty margin on this frame (`cosmiq_pyro.app.automodel`); or a
        cosmiq_pyro checkpoint or a published model name.  Models are read once per process
        (`modelcache.cached_model`).
    T : int, optional
        Posterior draws per pixel for a Bayesian model and a Monte Carlo method (default
        `cosmiq_pyro.inference.methods.DEFAULT_T`; a deterministic model makes one pass; an
        error with a sampling-free method).
    threshold : float
        A pixel is a cosmic ray when its probability exceeds this.
    gain : astropy.units.Quantity, optional
        Gain in ``electron / adu`` (e.g. ``1.9 * u.electron / u.adu``); required for an ``adu``
        frame, refused for one already in electrons.
    seed : int
        Seed of the posterior draws: the same seed gives the same maps.
    tile, device
        As for `cosmiq_pyro.predict`.
    method : str, optional
        The predictive method, as for `cosmiq_pyro.predict` (default
        `cosmiq_pyro.inference.methods.DEFAULT_METHOD`).

    Returns
    -------
    astropy.nddata.CCDData
        A copy of ``ccd`` (same data, unit, uncertainty, WCS) whose ``mask`` is
        ``ccd.mask | (prob > threshold)`` (just the CR mask when ``ccd.mask`` is None), with:

        * ``.cr_prediction``: the `~cosmiq_pyro.Prediction` behind the mask, float32 maps of
          the frame's shape: ``prob`` (CR probability), ``entropy`` (total uncertainty, nats),
          ``aleatoric`` and ``epistemic`` (their split), and ``T``.  A plain attribute of the
          returned object: `~astropy.nddata.CCDData` has no slot for extra per-pixel maps
          (``uncertainty`` is the pixel values' own error, ``flags`` one array), so it does not
          survive ``copy()``, arithmetic, slicing or ``write()``; ``cosmiq predict`` /
          `predict_many` write the maps to FITS.
        * ``meta`` (the FITS header ``write()`` saves) gains the keywords of the products'
          provenance: CQVERS, CQMODEL, CQMSHA, CQMNAME, CQMREQ, CQMWHY (the model used, the one
          asked for and why), CQKIND, CQMETHOD, CQT (Monte Carlo methods only), CQTHRESH, CQSEED,
          plus CQNCRPIX
          (pixels flagged as cosmic rays) and, for a model with a novelty model, CQNOVEL (the
          frame's novelty, `cosmiq_pyro.inference.novelty`) and CQISNOV (True when it is above
          the model's threshold: a UserWarning then says the mask may be wrong).  A frame smaller
          than one novelty block (64x64 px) gets neither, with a warning saying so.

    Raises
    ------
    TypeError
        ``ccd`` is not a CCDData, or ``gain`` is not a Quantity.
    ValueError
        ``ccd`` is not 2-D, has no unit or one other than electron / adu, an ``adu`` frame has
        no ``gain`` (or an electron frame has one), ``gain`` is not in electron / adu or not
        positive, a bad ``method``, ``T``, ``threshold`` or ``seed``, or fill-value pixels (finite,
        beyond ``io.fitsio.MAX_ABS_ELECTRONS``) outside ``ccd.mask`` (non-finite pixels are left
        out by themselves).

    Notes
    -----
    The model sees the frame in electrons, :math:`e^- = d \\cdot g` for ``adu`` data :math:`d`
    and gain :math:`g` (``electron / adu``), :math:`e^- = d \\cdot s` for data in a unit
    :math:`s \\cdot` electron.  The pixel values are returned unchanged (not cleaned): replace
    the masked pixels with `cosmiq_pyro.deepcr.inpaint.median_inpaint` if needed.

    Examples
    --------
    >>> import astropy.units as u                                            # doctest: +SKIP
    >>> from astropy.nddata import CCDData                                   # doctest: +SKIP
    >>> from cosmiq_pyro import cosmicray_cosmiq                             # doctest: +SKIP
    >>> raw = CCDData.read("frame.fits", unit="adu")                        # doctest: +SKIP
    >>> clean = cosmicray_cosmiq(raw, gain=1.9 * u.electron / u.adu)         # doctest: +SKIP
    >>> clean.mask.sum(), clean.cr_prediction.epistemic.max()                # doctest: +SKIP
    """
    if not isinstance(ccd, CCDData):
        raise TypeError(f"ccd must be an astropy.nddata.CCDData, got {type(ccd).__name__}")
    if np.ndim(ccd.data) != 2:
        raise ValueError(f"ccd must be a 2-D frame, got data of shape {np.shape(ccd.data)}")
    threshold = check_float(threshold, "threshold", minimum=0.0, maximum=1.0)
    seed = check_seed(seed)
    electrons_per_unit = _electrons_per_unit(ccd.unit, gain)
    image = np.asarray(ccd.data, dtype=np.float32) * np.float32(electrons_per_unit)  # (H, W) electrons
    ignore = ~np.isfinite(image)
    if ccd.mask is not None:
        ignore |= np.asarray(ccd.mask, dtype=bool)
    image = validated_image(image, ignore, remedy="set them in ccd.mask (CCDData's bad-pixel mask) to leave "
                            "them out")
    choice = choose_model(model, header=ccd.meta if len(ccd.meta) else None, images=[(image, ignore)],
                          device=device)
    loaded = choice.loaded
    prediction = predict(loaded.result, image, method=method, T=T, ignore=ignore, seed=seed, tile=tile,
                         device=device)
    crs = prediction.mask(threshold)  # (H, W) bool; ignored pixels are no cosmic rays (they are in ccd.mask)

    result = ccd.copy()
    result.mask = crs if ccd.mask is None else (np.asarray(ccd.mask, dtype=bool) | crs)
    for key, value, comment in (
            ("CQVERS", __version__, "cosmiq_pyro version"),
            ("CQMODEL", os.path.basename(loaded.weights_file)[:60], "model file"),
            ("CQMSHA", loaded.sha256, ""),
            ("CQMNAME", choice.name, ""),
            ("CQMREQ", os.path.basename(choice.requested), ""),
            ("CQMWHY", choice.reason, ""),
            ("CQKIND", type(loaded.result.model).__name__, "model class"),
            ("CQMETHOD", prediction.method, "predictive method"),
            *([] if prediction.T is None else [("CQT", int(prediction.T), "posterior draws per pixel")]),
            ("CQTHRESH", float(threshold), "CR where probability > CQTHRESH"),
            ("CQSEED", int(seed), "seed of the posterior draws"),
            ("CQNCRPIX", int(crs.sum()), "pixels flagged as cosmic rays by cosmiq_pyro")):
        result.meta[key] = (value, comment) if comment and isinstance(result.meta, fits.Header) else value
    if prediction.novelty is not None:  # a model with a novelty score: how unlike its training frames this one is
        for key, value, comment in (("CQNOVEL", float(prediction.novelty), "novelty, 1 = 95th pct in-distribution"),
                                    ("CQISNOV", bool(prediction.is_novel), "novelty above the model's threshold")):
            result.meta[key] = (value, comment) if isinstance(result.meta, fits.Header) else value
        if prediction.is_novel:
            warnings.warn(f"the frame is unlike the training frames of {choice.name} "
                          f"(novelty {prediction.novelty:.2f}; 1 = 95th percentile of in-distribution frames): "
                          "its cosmic-ray mask may be wrong", UserWarning, stacklevel=2)
    result.cr_prediction = prediction
    return result


def _electrons_per_unit(unit, gain) -> float:
    """Factor from ``unit`` (with ``gain`` for adu) to electrons; errors for anything else."""
    if unit is None:
        raise ValueError("ccd has no unit; expected electron, or adu with gain= in electron / adu")
    if unit.is_equivalent(u.electron):
        if gain is not None:
            raise ValueError(f"ccd is already in {unit}; gain={gain!r} would be applied twice (leave gain=None)")
        return float(unit.to(u.electron))
    if not unit.is_equivalent(u.adu):
        raise ValueError(f"ccd has unit {unit}; expected electron, or adu with gain= in electron / adu")
    if gain is None:
        raise ValueError(f"ccd is in {unit}; pass gain= as a Quantity in electron / adu "
                         "(e.g. gain=1.9 * u.electron / u.adu)")
    if not isinstance(gain, u.Quantity):
        raise TypeError(f"gain must be a Quantity in electron / adu (e.g. 1.9 * u.electron / u.adu), "
                        f"got {type(gain).__name__} {gain!r}")
    if not gain.unit.is_equivalent(u.electron / u.adu) or not gain.isscalar:
        raise ValueError(f"gain must be one value in electron / adu, got {gain}")
    factor = float((gain * unit).to(u.electron).value)
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"gain must be a positive finite number of electron / adu, got {gain}")
    return factor
