"""FITS output products: what `cosmiq predict` writes.

A product file mirrors its input.  For every science extension ``SCI,v`` of the input it holds
(each `map_choice` names, ``--maps``; MASK always)

=========  =======  ===================================================================
EXTNAME    type     content
=========  =======  ===================================================================
PROB,v     float32  posterior-mean CR probability
ENTROPY,v  float32  binary entropy of PROB, nats (total predictive uncertainty)
EPISTEMIC  float32  mutual information between label and weights, nats; for a Bayesian
                    model, whatever the predictive method (CQMETHOD); a deterministic model
                    has no weight uncertainty (an all-zero map would read as "certain")
MASK,v     uint8    `MASK_CR` (1) where PROB > threshold, `MASK_IGNORED` (2) on ignored
                    pixels, else 0
NOVELTY,v  float32  how unlike the model's training frames each 64x64 px block is (1 = the
                    95th percentile of in-distribution blocks); only when the model carries
                    a novelty model (`inference.novelty`)
=========  =======  ===================================================================

Ignored pixels (`Prediction.ignore`: DQ-flagged, NaN or fill values in the input) are NaN in
PROB, ENTROPY and EPISTEMIC and 2 in MASK; CQIGNORE counts them.  Every map is tile-compressed
(`io.fitswrite.compressed_image_hdu`, HCOMPRESS): the float maps quantised with step `QUANTIZE_STEP` (each
stored value within CQPREC, about 2e-5, of the computed one), MASK losslessly.

Every keyword cosmiq_pyro writes is a row of `app.provenance.KEYWORDS` (the provenance keyword
table: the value it records, what it means, where it is written and whether it decides if an
existing product is reused); its `Provenance` cards go into every HDU; `predict_fits` runs a model on a FITS file and writes its product (what
``cosmiq predict`` does per input).  Every extension also carries the input extension's
celestial WCS (``WCS.to_header(relax=True)``: the linear WCS and SIP distortion; HST's
lookup-table distortions (D2IM, CPDIS) are left out because they live in extra extensions) and
the input's identifying keywords (`IDENTIFYING_KEYWORDS`, from the science header first, then
the primary).  Files are written with `fitswrite.write_hdulist_atomic`: complete or absent, and an
existing file is replaced only with ``overwrite=True``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import FITSFixedWarning

from ..models.results import FitResult
from ..io.atomic import check_writable_directory
from ..io.digest import file_sha256
from ..io.fitsio import HSTImage, read_hst
from ..io.fitswrite import compressed_image_hdu, write_hdulist_atomic
from ..inference.methods import DEFAULT_T, run_settings
from ..inference.predictive import Prediction, predict
from ..utils.checks import check_probability
from .automodel import ModelChoice, choose_model
from .modelcache import LoadedModel
from .provenance import PRODUCT_EXTENSIONS, Provenance, map_choice, reading_options

__all__ = ["IDENTIFYING_KEYWORDS", "DEFAULT_T", "product_maps", "MASK_CR", "MASK_IGNORED", "QUANTIZE_STEP",
           "product_hdulist", "unit_cards",
           "write_products", "predict_fits", "novel_extensions"]

#: Keywords copied from the input (science header first, then primary) into every product HDU.
IDENTIFYING_KEYWORDS = ("TELESCOP", "INSTRUME", "DETECTOR", "FILTER", "FILTER1", "FILTER2",
                        "ROOTNAME", "DATE-OBS", "TIME-OBS", "EXPSTART", "EXPTIME", "TARGNAME",
                        "PROPOSID", "CCDCHIP", "CCDGAIN")
#: MASK values: a cosmic ray (PROB > CQTHRESH), an ignored pixel (DQ-flagged, NaN or fill value
#: in the input: its maps are NaN); 0 elsewhere.  Bits, as in HST DQ arrays: ``MASK & 1`` are the
#: cosmic rays, ``MASK != 0`` every pixel not to use.
MASK_CR, MASK_IGNORED = 1, 2
#: Quantisation step of the float maps (PROB, ENTROPY, EPISTEMIC, NOVELTY): each stored value
#: is within QUANTIZE_STEP / 2 = 1.95e-5 (plus float32 rounding) of the computed one (CQPREC); chosen by experiment
#: (docs/products.md).
QUANTIZE_STEP = 3.9e-5
_COMMENTS = {
    "PROB": "posterior-mean cosmic-ray probability",
    "ENTROPY": "binary entropy of PROB [nats]",
    "EPISTEMIC": "mutual information label-weights [nats]",
    "MASK": "1 = CR (PROB > CQTHRESH), 2 = ignored pixel",
    "NOVELTY": "block novelty, 1 = 95th pct in-distribution",
}


def product_maps(provenance: Provenance) -> tuple:
    """The map extensions every input extension's product holds, in order: those of CQMAPS
    (`map_choice`) less EPISTEMIC for a deterministic model (a Bayesian model's, whatever the
    method).  NOVELTY, when asked for, comes only from a model with a novelty model, so it is not
    among them."""
    chosen = set(map_choice(provenance.maps or None).split(","))
    return tuple(name for name in PRODUCT_EXTENSIONS if name in chosen and name != "NOVELTY"
                 and (name != "EPISTEMIC" or provenance.method != "deterministic"))


def product_hdulist(images: Sequence[HSTImage], predictions: Sequence[Prediction],
                    provenance: Provenance) -> fits.HDUList:
    """The product HDUList for one input file (see the module docstring).

    Parameters
    ----------
    images : sequence of HSTImage
        The input's science extensions (from `fitsio.read_hst`).
    predictions : sequence of Prediction
        One per image, of the same shape.
    provenance : Provenance

    Returns
    -------
    astropy.io.fits.HDUList
        A primary HDU without data, then PROB, ENTROPY, EPISTEMIC (a Bayesian model's),
        MASK, NOVELTY (when the prediction has a novelty score) per image.
    """
    if not isinstance(provenance, Provenance):
        raise TypeError(f"provenance must be a Provenance, got {type(provenance).__name__}")
    images, predictions = list(images), list(predictions)
    if not images or len(images) != len(predictions):
        raise ValueError(f"need one prediction per image, got {len(images)} images and "
                         f"{len(predictions)} predictions")
    primary = fits.PrimaryHDU()
    _copy_identifying(primary.header, (images[0].primary_header,))
    _add_provenance(primary.header, provenance)
    hdus = [primary]
    for image, prediction in zip(images, predictions):
        if not isinstance(prediction, Prediction):
            raise TypeError(f"predictions must be Prediction objects, got {type(prediction).__name__}")
        if prediction.prob.shape != image.image.shape:
            raise ValueError(f"prediction of shape {prediction.prob.shape} does not match "
                             f"extension {image.extname},{image.extver} of shape {image.image.shape}")
        ignored = image.ignore if prediction.ignore is None else prediction.ignore
        maps = {
            "PROB": _nan_where(prediction.prob, ignored),
            "ENTROPY": _nan_where(prediction.entropy, ignored),
            "EPISTEMIC": _nan_where(prediction.epistemic, ignored),
            "MASK": np.where(ignored, MASK_IGNORED, (prediction.prob > provenance.threshold) * MASK_CR).astype(np.uint8),
            "NOVELTY": prediction.novelty_map,
        }
        wcs_cards = _wcs_cards(image)
        novelty = prediction.novelty is not None and "NOVELTY" in map_choice(provenance.maps or None)
        for name in product_maps(provenance) + (("NOVELTY",) if novelty else ()):
            header = fits.Header()
            header["EXTNAME"] = (name, _COMMENTS[name])
            header.extend(wcs_cards, update=True)
            _copy_identifying(header, (image.header, image.primary_header))
            header["CQSRCEXT"] = (f"{image.extname},{image.extver}", "input extension")
            for key, value, comment in unit_cards(image):
                header[key] = (value, comment)
            header["CQIGNORE"] = (int(np.count_nonzero(ignored)), "pixels ignored: NaN maps, MASK = 2")
            if prediction.novelty is not None:
                header["CQNOVEL"] = (float(prediction.novelty), "novelty, 1 = 95th pct in-distribution")
                header["CQISNOV"] = (bool(prediction.is_novel), "novelty above the model's threshold")
            step = None if name == "MASK" else QUANTIZE_STEP
            header["CQPREC"] = (_precision(maps[name], step), "max |stored - computed| of a pixel")
            _add_provenance(header, provenance)
            hdus.append(compressed_image_hdu(maps[name], name=name, ver=image.extver, quantize_step=step,
                                             header=header))
    return fits.HDUList(hdus)


def _precision(values: np.ndarray, step: float | None) -> float:
    """Bound on |stored - computed| of a map quantised with ``step``: half the step, plus the
    float32 rounding of the largest value (2**-24 relative); 0 when stored losslessly."""
    if step is None:
        return 0.0
    finite = values[np.isfinite(values)]
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    return step / 2 + largest * 2.0 ** -24


def _nan_where(values: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    return np.where(ignored, np.float32(np.nan), values).astype(np.float32)


def unit_cards(image: HSTImage) -> list[tuple]:
    """(keyword, value, comment) cards saying how ``image`` was converted to electrons."""
    unit = image.bunit_used if image.bunit_used is not None else "ELECTRONS (assumed: no BUNIT)"
    cards = [("CQBUNIT", str(unit)[:60], ""),
             ("CQEPERU", float(image.electrons_per_unit), "electrons per stored unit")]
    if image.gain_e_per_adu is not None:
        cards.append(("CQGAIN", float(image.gain_e_per_adu), "gain applied [e-/ADU]"))
    cards.append(("CQINSTR", image.instrument or "NONE", "camera spec used to read the input"))
    return cards


def write_products(path, images: Sequence[HSTImage], predictions: Sequence[Prediction],
                   provenance: Provenance, *, overwrite: bool = False) -> Path:
    """Write `product_hdulist` to ``path`` atomically; an existing file needs ``overwrite``.

    Returns the path written.  Raises FileExistsError (without ``overwrite``) and
    FileNotFoundError (missing directory) before anything is written.
    """
    return write_hdulist_atomic(product_hdulist(images, predictions, provenance), path,
                                overwrite=overwrite)


def predict_fits(model, in_path, out_path, *, model_file=None, method: str | None = None,
                 T: int | None = None,
                 threshold: float = 0.5, seed: int = 0, tile: int = 1024,
                 dq_flags: int | None = None, ext=None, bunit: str | None = None,
                 gain_e_per_adu: float | None = None, instrument=None, exptime_s: float | None = None,
                 maps=None, overwrite: bool = False, device=None, progress: bool | None = None,
                 images: Sequence[HSTImage] | None = None) -> Path:
    """Run a model on every science extension of a FITS file and write its product file.

    ``read_hst(in_path, ...)`` -> the model (``"auto"``: chosen for this file,
    `automodel.choose_model`) -> `predictive.predict` per extension (the DQ-flagged and
    non-finite pixels passed as ``ignore``) -> `write_products` to ``out_path``.

    Parameters
    ----------
    model : str, os.PathLike, FitResult or automodel.ModelChoice
        ``"auto"`` (`models.defaults.AUTO`: the camera's model, else the least novel shipped
        one; `app.automodel`), a published model name or a checkpoint path (read once per
        process, `modelcache.cached_model`), a loaded `FitResult` (with ``model_file``), or a
        choice already made.  CQMNAME, CQMREQ and CQMWHY record which model was used and why.
    in_path, out_path : str or os.PathLike
    model_file : str or os.PathLike, optional
        For a `FitResult` only: the file it was read from; its SHA-256 goes into the provenance
        keywords.
    method : str, optional
        The predictive method (default `cosmiq_pyro.inference.methods.DEFAULT_METHOD`),
        recorded as CQMETHOD; a deterministic model makes one pass (CQMETHOD 'deterministic').
    T : int, optional
        Posterior draws per pixel of a Bayesian model and a Monte Carlo method (default
        `DEFAULT_T`); a ValueError with a sampling-free method.  A deterministic model makes one
        pass: a ``T`` other than 1 is not used and a warning says so.
    threshold, seed, tile, device, progress
        As for `predictive.predict`; ``threshold`` makes the MASK.
    dq_flags, ext, bunit, gain_e_per_adu, instrument, exptime_s
        As for `fitsio.read_hst`: the DQ bits ignored (default: the camera spec's), one extension
        only, the unit to assume instead of BUNIT, the gain (e-/ADU) instead of the header's, the
        camera spec (name or ``.toml`` path) instead of the one recognised from the header (with
        ``"auto"`` it also picks the model), the exposure time (s) of a rate image (ELECTRONS/S,
        COUNTS/S) instead of EXPTIME.
    maps : str or sequence of str, optional
        The map extensions to write (`map_choice`; default all, MASK always).
    overwrite : bool
        Replace an existing ``out_path`` (checked before any computation, as is the output
        directory's writability).
    images : sequence of HSTImage, optional
        ``in_path`` as `fitsio.read_hst` returned it with these reading options, when the caller
        has read it already (to choose the model); default: read here.

    Returns
    -------
    pathlib.Path
    """
    check_probability(threshold, "threshold")
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{str(out_path)!r} exists; pass overwrite=True (--overwrite) to replace it")
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"output directory {str(out_path.parent)!r} does not exist")
    check_writable_directory(out_path.parent)
    if isinstance(model, FitResult):
        if model_file is None:
            raise TypeError("predict_fits: a FitResult needs model_file= (the file it was read from, for the "
                            "provenance); or pass the model's name or path")
        model = _loaded_choice(model, model_file)
    elif model_file is not None:
        raise TypeError("predict_fits: model_file= is for a FitResult; a name or path identifies its own file")
    elif not isinstance(model, (ModelChoice, str, os.PathLike)):
        raise TypeError(f"model must be 'auto', a published name, a checkpoint path, a FitResult or a "
                        f"ModelChoice, got {type(model).__name__}")
    source_sha256 = _input_sha256(in_path)  # the input's digest, taken before it is read
    reading = reading_options(ext, bunit, gain_e_per_adu, dq_flags, instrument, exptime_s)
    if images is None:
        images = read_hst(in_path, ext=ext, dq_flags=dq_flags, bunit=bunit, gain_e_per_adu=gain_e_per_adu,
                          instrument=instrument, exptime_s=exptime_s)
    choice = model if isinstance(model, ModelChoice) else choose_model(
        model, header=images[0].primary_header, images=lambda: [(im.image, im.ignore) for im in images],
        instrument=instrument, device=device)
    deterministic = not choice.bayesian
    if deterministic and T is not None and T != 1:
        warnings.warn(f"T={T} was not used: model {os.path.basename(choice.weights_file)!r} is "
                      "deterministic (one pass, no EPISTEMIC map)", UserWarning, stacklevel=2)
    method, draws = run_settings(method, T, bayesian=not deterministic)
    # the provenance is built, and its cards checked FITS-legal, before any pixel is computed
    provenance = Provenance(model_file=os.fspath(choice.weights_file), model_sha256=choice.sha256,
                            model_kind=type(choice.result.model).__name__, T=draws, method=method,
                            model_name=choice.name, model_request=choice.requested, model_reason=choice.reason,
                            threshold=float(threshold), seed=int(seed), reading=reading, maps=map_choice(maps),
                            source_file=os.fspath(in_path), source_sha256=source_sha256)
    provenance.header()
    predictions = [predict(choice.result, im.image, method=None if deterministic else method, T=draws,
                           ignore=im.ignore, seed=seed, tile=tile, device=device, progress=progress)
                   for im in images]
    return write_products(out_path, images, predictions, provenance, overwrite=overwrite)


def _loaded_choice(model: FitResult, model_file) -> ModelChoice:
    """A loaded `FitResult` as the `automodel.ModelChoice` of the file it was read from."""
    name = os.path.basename(os.fspath(model_file))
    return ModelChoice(requested=os.fspath(model_file), name=name, reason="given",
                       loaded=LoadedModel(result=model, weights_file=Path(model_file), sha256=file_sha256(model_file)))


def _input_sha256(path) -> str:
    """`file_sha256` of an input; a missing or unreadable one is left for `read_hst` to report."""
    try:
        return file_sha256(path)
    except OSError:
        return ""


def novel_extensions(product_path) -> list[tuple[str, float]]:
    """``(input extension, CQNOVEL)`` of each science extension a product marks novel (CQISNOV)."""
    with fits.open(product_path) as hdul:
        return [(hdu.header.get("CQSRCEXT", hdu.name), float(hdu.header["CQNOVEL"]))
                for hdu in hdul if hdu.name == "PROB" and hdu.header.get("CQISNOV", False)]


def _add_provenance(header: fits.Header, provenance: Provenance) -> None:
    header.extend(provenance.header(), update=True)
    header["COMMENT"] = "CQMODEL: model file, CQMSHA: its SHA-256; CQSOURCE: input file, CQSRCSHA: its SHA-256"


def _copy_identifying(header: fits.Header, sources) -> None:
    for key in IDENTIFYING_KEYWORDS:
        for source in sources:
            if key in source:
                header[key] = (source[key], source.comments[key])
                break


def _wcs_cards(image: HSTImage) -> fits.Header:
    if image.wcs is None:
        return fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return image.wcs.to_header(relax=True)
