"""FITS output products: what `cosmiq predict` writes, and previews of simulated frames.

A product file mirrors its input.  For every science extension ``SCI,v`` of the input it holds

=========  =======  ===================================================================
EXTNAME    type     content
=========  =======  ===================================================================
PROB,v     float32  posterior-mean CR probability
ENTROPY,v  float32  binary entropy of PROB, nats (total predictive uncertainty)
EPISTEMIC  float32  mutual information between label and weights, nats; only when the
                    maps come from T > 1 posterior draws (a deterministic model has no
                    weight uncertainty: an all-zero map would read as "certain")
MASK,v     uint8    1 where PROB > threshold, else 0
NOVELTY,v  float32  how unlike the model's training frames each 64x64 px block is (1 = the
                    95th percentile of in-distribution blocks); only when the model carries
                    a novelty model (`inference.novelty`)
=========  =======  ===================================================================

With a novelty model, every extension of ``SCI,v`` also carries CQNOVEL (the frame's novelty,
1 = the 95th percentile of in-distribution frames) and CQISNOV (T when above the model's
threshold: the CR mask comes from a model applied outside the data it was trained on).

Each extension also says how the input was read: CQBUNIT (the unit assumed, from BUNIT or
the caller), CQGAIN (the gain applied, e-/ADU, when the unit is a count unit) and CQEPERU
(the factor from stored values to electrons).

Every extension carries the input extension's celestial WCS (``WCS.to_header(relax=True)``:
the linear WCS and SIP distortion; HST's lookup-table distortions (D2IM, CPDIS) are left out
because they live in extra extensions), the input's identifying keywords
(`IDENTIFYING_KEYWORDS`, from the science header first, then the primary), and the provenance
keywords of `Provenance`.  `predict_fits` runs a model on a FITS file and writes its product
(what ``cosmiq predict`` does per input).  Files are written with `fitswrite.write_hdulist_atomic`: complete or
absent, and an existing file is replaced only with ``overwrite=True``.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import FITSFixedWarning

from .._version import __version__
from ..models.results import FitResult
from ..io.atomic import check_writable_directory
from ..io.fitsio import DEFAULT_DQ_FLAGS, HSTImage, read_hst
from ..io.fitswrite import write_hdulist_atomic
from ..inference.predictive import Prediction, predict
from ..utils.checks import check_probability

__all__ = ["IDENTIFYING_KEYWORDS", "PRODUCT_EXTENSIONS", "DEFAULT_T", "Provenance", "file_sha256",
           "product_hdulist", "unit_cards", "write_products", "predict_fits", "simulated_hdulist",
           "novel_extensions"]

#: Keywords copied from the input (science header first, then primary) into every product HDU.
IDENTIFYING_KEYWORDS = ("TELESCOP", "INSTRUME", "DETECTOR", "FILTER", "FILTER1", "FILTER2",
                        "ROOTNAME", "DATE-OBS", "TIME-OBS", "EXPSTART", "EXPTIME", "TARGNAME",
                        "PROPOSID", "CCDCHIP", "CCDGAIN")
#: Product extensions written per input science extension, in order (EPISTEMIC only for T > 1,
#: NOVELTY only when the model has a novelty model).
PRODUCT_EXTENSIONS = ("PROB", "ENTROPY", "EPISTEMIC", "MASK", "NOVELTY")
#: Default posterior draws per pixel of a Bayesian model in `predict_fits`.
DEFAULT_T = 16
_COMMENTS = {
    "PROB": "posterior-mean cosmic-ray probability",
    "ENTROPY": "binary entropy of PROB [nats]",
    "EPISTEMIC": "mutual information label-weights [nats]",
    "MASK": "1 where PROB > CQTHRESH (cosmic ray)",
    "NOVELTY": "block novelty, 1 = 95th pct in-distribution",
}


@dataclass(frozen=True)
class Provenance:
    """How a product was made; written as header keywords (name in brackets).

    Attributes
    ----------
    model_file : str
        The model file used [CQMODEL: its base name; the input file is CQSOURCE].
    model_sha256 : str
        SHA-256 of the model file, 64 hex digits [CQMSHA].
    model_kind : str
        ``"UNet2SigmoidVI"`` (Bayesian) or ``"UNet2Sigmoid"`` (deterministic) [CQKIND].
    T : int
        Posterior draws per pixel (1 for the deterministic twin) [CQT].
    threshold : float
        MASK threshold on PROB [CQTHRESH].
    seed : int
        Seed of the posterior draws [CQSEED].
    reading : str
        The reading options that decide the input pixels, `reading_options` [CQREAD]:
        extension, assumed unit, gain and DQ bits (``"ext=None bunit=None gain=None dq=..."``).
    package_version : str
        cosmiq_pyro version [CQVERS].
    date : str
        UTC time the product was made, ISO 8601 [DATE].
    """

    model_file: str
    model_sha256: str
    model_kind: str
    T: int
    threshold: float
    seed: int
    reading: str = ""
    package_version: str = __version__
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%dT%H:%M:%S"))

    #: Header keyword of each field.
    KEYWORDS = {"package_version": "CQVERS", "model_file": "CQMODEL", "model_sha256": "CQMSHA",
                "model_kind": "CQKIND", "T": "CQT", "threshold": "CQTHRESH", "seed": "CQSEED",
                "reading": "CQREAD", "date": "DATE"}
    #: The fields that decide a product's pixels: equal values give the same product (a later
    #: run with them may skip the input; see `cosmiq_pyro.app.batch.predict_many`).
    RUN_FIELDS = ("package_version", "model_sha256", "T", "seed", "threshold", "reading")
    #: Keywords a product of an older version may lack (their value then reads as "").
    OPTIONAL_KEYWORDS = ("CQREAD",)

    @classmethod
    def from_header(cls, header) -> "Provenance":
        """The provenance that `cards` wrote into ``header`` (a product's primary header).

        Raises
        ------
        ValueError
            A provenance keyword is missing (not a cosmiq_pyro product).
        """
        missing = [key for key in cls.KEYWORDS.values()
                   if key not in header and key not in cls.OPTIONAL_KEYWORDS]
        if missing:
            raise ValueError(f"no provenance keyword {', '.join(missing)} (not a cosmiq_pyro product)")
        return cls(**{name: header.get(key, "") for name, key in cls.KEYWORDS.items()})

    def differences(self, other: "Provenance") -> list[str]:
        """One ``"CQT 8, not 16"`` line per `RUN_FIELDS` value of ``self`` that differs from ``other``'s."""
        lines = []
        for name in self.RUN_FIELDS:
            ours, theirs = getattr(self, name), getattr(other, name)
            if ours != theirs:
                if name == "model_sha256":  # a prefix is enough to tell two digests apart
                    ours, theirs = f"{ours[:12]}...", f"{theirs[:12]}..."
                lines.append(f"{self.KEYWORDS[name]} {ours!r}, not {theirs!r}")
        return lines

    def cards(self) -> list[tuple]:
        """(keyword, value, comment) header cards."""
        return [
            ("ORIGIN", "cosmiq_pyro", "software that made this file"),
            ("CQVERS", self.package_version, "cosmiq_pyro version"),
            ("CQMODEL", os.path.basename(self.model_file)[:60], ""),  # long values: no room for comments
            ("CQMSHA", self.model_sha256, ""),
            ("CQKIND", self.model_kind, "model class"),
            ("CQT", int(self.T), "posterior draws per pixel"),
            ("CQTHRESH", float(self.threshold), "MASK = PROB > CQTHRESH"),
            ("CQSEED", int(self.seed), "seed of the posterior draws"),
            ("CQREAD", self.reading, ""),
            ("DATE", self.date, "UTC date this file was written"),
        ]


def reading_options(ext=None, bunit=None, gain_e_per_adu=None, dq_flags=DEFAULT_DQ_FLAGS) -> str:
    """The `fitsio.read_hst` options that decide a product's input pixels, as one header value.

    Two runs whose values are equal read the same pixels from the same file, so a product made
    with other reading options is never taken for this run's (``predict_many``'s resume).
    """
    gain = None if gain_e_per_adu is None else float(gain_e_per_adu)
    return f"ext={ext} bunit={bunit} gain={gain} dq={int(dq_flags)}"


def file_sha256(path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


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
        A primary HDU without data, then PROB, ENTROPY, EPISTEMIC (when ``provenance.T > 1``),
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
    if images[0].path:
        primary.header["CQSOURCE"] = (os.path.basename(images[0].path)[:60], "")
    hdus = [primary]
    for image, prediction in zip(images, predictions):
        if not isinstance(prediction, Prediction):
            raise TypeError(f"predictions must be Prediction objects, got {type(prediction).__name__}")
        if prediction.prob.shape != image.image.shape:
            raise ValueError(f"prediction of shape {prediction.prob.shape} does not match "
                             f"extension {image.extname},{image.extver} of shape {image.image.shape}")
        maps = {
            "PROB": prediction.prob.astype(np.float32),
            "ENTROPY": prediction.entropy.astype(np.float32),
            "EPISTEMIC": prediction.epistemic.astype(np.float32),
            "MASK": (prediction.prob > provenance.threshold).astype(np.uint8),
            "NOVELTY": prediction.novelty_map,
        }
        wcs_cards = _wcs_cards(image)
        for name in PRODUCT_EXTENSIONS:
            if (name == "EPISTEMIC" and provenance.T <= 1) or (name == "NOVELTY" and prediction.novelty is None):
                continue
            hdu = fits.ImageHDU(maps[name], name=name, ver=image.extver)
            header = hdu.header
            header["EXTNAME"] = (name, _COMMENTS[name])
            header.extend(wcs_cards, update=True)
            _copy_identifying(header, (image.header, image.primary_header))
            header["CQSRCEXT"] = (f"{image.extname},{image.extver}", "input extension")
            for key, value, comment in unit_cards(image):
                header[key] = (value, comment)
            if prediction.novelty is not None:
                header["CQNOVEL"] = (float(prediction.novelty), "novelty, 1 = 95th pct in-distribution")
                header["CQISNOV"] = (bool(prediction.is_novel), "novelty above the model's threshold")
            _add_provenance(header, provenance)
            hdus.append(hdu)
    return fits.HDUList(hdus)


def unit_cards(image: HSTImage) -> list[tuple]:
    """(keyword, value, comment) cards saying how ``image`` was converted to electrons."""
    unit = image.bunit_used if image.bunit_used is not None else "ELECTRONS (assumed: no BUNIT)"
    cards = [("CQBUNIT", str(unit)[:60], ""),
             ("CQEPERU", float(image.electrons_per_unit), "electrons per stored unit")]
    if image.gain_e_per_adu is not None:
        cards.append(("CQGAIN", float(image.gain_e_per_adu), "gain applied [e-/ADU]"))
    return cards


def write_products(path, images: Sequence[HSTImage], predictions: Sequence[Prediction],
                   provenance: Provenance, *, overwrite: bool = False) -> Path:
    """Write `product_hdulist` to ``path`` atomically; an existing file needs ``overwrite``.

    Returns the path written.  Raises FileExistsError (without ``overwrite``) and
    FileNotFoundError (missing directory) before anything is written.
    """
    return write_hdulist_atomic(product_hdulist(images, predictions, provenance), path,
                                overwrite=overwrite)


def predict_fits(model: FitResult, in_path, out_path, *, model_file, T: int | None = None,
                 threshold: float = 0.5, seed: int = 0, tile: int = 1024,
                 dq_flags: int = DEFAULT_DQ_FLAGS, ext=None, bunit: str | None = None,
                 gain_e_per_adu: float | None = None, overwrite: bool = False, device=None,
                 progress: bool | None = None) -> Path:
    """Run ``model`` on every science extension of a FITS file and write its product file.

    ``read_hst(in_path, ...)`` -> `predictive.predict` per extension (the DQ-flagged and
    non-finite pixels passed as ``ignore``) -> `write_products` to ``out_path``.

    Parameters
    ----------
    model : FitResult
        From `checkpoint.load` (or a deterministic net wrapped in one).
    in_path, out_path : str or os.PathLike
    model_file : str or os.PathLike
        The file the model was read from; its SHA-256 goes into the provenance keywords.
    T : int, optional
        Posterior draws per pixel of a Bayesian model (default `DEFAULT_T`).  A deterministic
        model makes one pass: a ``T`` other than 1 is not used and a warning says so.
    threshold, seed, tile, device, progress
        As for `predictive.predict`; ``threshold`` makes the MASK.
    dq_flags, ext, bunit, gain_e_per_adu
        As for `fitsio.read_hst`: the DQ bits ignored, one extension only, the unit to assume
        instead of BUNIT, the gain (e-/ADU) instead of GAIN / CCDGAIN / ATODGAIN.
    overwrite : bool
        Replace an existing ``out_path`` (checked before any computation, as is the output
        directory's writability).

    Returns
    -------
    pathlib.Path
    """
    if not isinstance(model, FitResult):
        raise TypeError(f"model must be a FitResult (checkpoint.load), got {type(model).__name__}")
    check_probability(threshold, "threshold")
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{str(out_path)!r} exists; pass overwrite=True (--overwrite) to replace it")
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"output directory {str(out_path.parent)!r} does not exist")
    check_writable_directory(out_path.parent)
    deterministic = getattr(model, "guide", None) is None
    if deterministic and T is not None and T != 1:
        warnings.warn(f"T={T} was not used: model {os.path.basename(os.fspath(model_file))!r} is "
                      "deterministic (one pass, no EPISTEMIC map)", UserWarning, stacklevel=2)
    draws = 1 if deterministic else (DEFAULT_T if T is None else T)
    images = read_hst(in_path, ext=ext, dq_flags=dq_flags, bunit=bunit, gain_e_per_adu=gain_e_per_adu)
    predictions = [predict(model, im.image, T=draws, ignore=im.ignore, seed=seed, tile=tile, device=device,
                           progress=progress) for im in images]
    provenance = Provenance(model_file=os.fspath(model_file), model_sha256=file_sha256(model_file),
                            model_kind=type(model.model).__name__, T=predictions[0].T,
                            threshold=float(threshold), seed=int(seed),
                            reading=reading_options(ext, bunit, gain_e_per_adu, dq_flags))
    return write_products(out_path, images, predictions, provenance, overwrite=overwrite)


def novel_extensions(product_path) -> list[tuple[str, float]]:
    """``(input extension, CQNOVEL)`` of each science extension a product marks novel (CQISNOV)."""
    with fits.open(product_path) as hdul:
        return [(hdu.header.get("CQSRCEXT", hdu.name), float(hdu.header["CQNOVEL"]))
                for hdu in hdul if hdu.name == "PROB" and hdu.header.get("CQISNOV", False)]


def simulated_hdulist(image, mask, ignore, meta: dict | None = None) -> fits.HDUList:
    """A simulated frame as FITS: SCI (electrons), CRMASK and IGNORE (uint8), meta in the header.

    `fitsio.read_hst` reads the SCI extension back (``BUNIT = 'ELECTRONS'``), so a preview can be
    fed to ``cosmiq predict``.

    Parameters
    ----------
    image : array_like (H, W)
        Electrons.
    mask, ignore : array_like of bool (H, W)
        CR truth and bad pixels.
    meta : dict, optional
        `simulate.SimulatedFrame.meta` (field, filter, exptime_s, seed, sky_e, ...).
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    for name, a in (("mask", mask), ("ignore", ignore)):
        if np.shape(a) != image.shape:
            raise ValueError(f"{name} has shape {np.shape(a)}, image has {image.shape}")
    meta = dict(meta or {})
    primary = fits.PrimaryHDU()
    header = primary.header
    header["ORIGIN"] = ("cosmiq_pyro", "software that made this file")
    header["CQVERS"] = (__version__, "cosmiq_pyro version")
    header["SIMULATD"] = (True, "simulated by cosmiq_pyro.data.simulate")
    header["INSTRUME"] = ("ACS", "simulated ACS/WFC-like frame")
    header["DETECTOR"] = ("WFC", "simulated")
    for key, meta_key, comment in (
            ("FILTER", "filter", "ACS filter simulated"),
            ("FIELD", "field", "field type: EX, GC or GAL"),
            ("EXPTIME", "exptime_s", "exposure time [s]"),
            ("SKY_E", "sky_e", "sky level per pixel [electrons]"),
            ("RDNOISE", "read_noise_e", "read noise [electrons]"),
            ("CCDGAIN", "gain_e_per_adu", "gain [e-/ADU]"),
            ("NCRS", "n_crs", "cosmic rays hitting the frame"),
            ("LABELS", "label_rule", "CRMASK rule: drizcr (AstroDrizzle) or sigma"),
            ("DEFECTS", "defects", "detector defects simulated"),
            ("SIMSEED", "seed", "simulator seed of this frame")):
        if meta.get(meta_key) is not None:
            value = meta[meta_key]
            header[key] = (value.item() if isinstance(value, np.generic) else value, comment)
    sci = fits.ImageHDU(image, name="SCI", ver=1)
    sci.header["BUNIT"] = ("ELECTRONS", "pixel unit")
    crmask = fits.ImageHDU(np.asarray(mask, dtype=np.uint8), name="CRMASK", ver=1)
    crmask.header["COMMENT"] = {
        "drizcr": "1 = CR pixel by AstroDrizzle's driz_cr rule (data.simulate.labels)",
        "sigma": f"1 = CR charge above {meta.get('mask_threshold_sigma', 1.0):g} sigma of the pixel noise",
    }.get(meta.get("label_rule"), "1 = pixel whose CR charge exceeds the simulator's mask threshold")
    bad = fits.ImageHDU(np.asarray(ignore, dtype=np.uint8), name="IGNORE", ver=1)
    bad.header["COMMENT"] = "1 = hot pixel, bad column, saturated or bleed trail"
    return fits.HDUList([primary, sci, crmask, bad])


def _add_provenance(header: fits.Header, provenance: Provenance) -> None:
    for key, value, comment in provenance.cards():
        header[key] = (value, comment)
    header["COMMENT"] = "CQMODEL: model file; CQMSHA: its SHA-256; CQSOURCE: input file"


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
