"""The provenance of a product: the keyword table and the values a run records.

Every keyword cosmiq_pyro writes into a product is a row of `KEYWORDS`: the value it records,
what it means, where it is written and whether it decides if an existing product is reused
(`REUSE`, read by ``predict_many``'s resume).  `Provenance` holds a run's values of the rows it
owns and turns them into header cards; `reading_options`, `map_choice` and `fits_name` (with
`io.digest.file_sha256`) make the values that go into them.  `app.products` writes them into the
files.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote

from astropy.io import fits

from .._version import __version__
from ..instruments import get_instrument

__all__ = ["PRODUCT_EXTENSIONS", "KEYWORDS", "Keyword", "REUSE", "Provenance", "fits_name", "fits_text",
           "map_choice", "reading_options"]

#: Product extensions written per input science extension, in order (EPISTEMIC only for a
#: Bayesian model, NOVELTY only when the model has a novelty model).
PRODUCT_EXTENSIONS = ("PROB", "ENTROPY", "EPISTEMIC", "MASK", "NOVELTY")


class Keyword(NamedTuple):
    """One row of the provenance keyword table `KEYWORDS`."""

    keyword: str
    #: what the value records: ``Provenance.<field>`` for the run's provenance, else its source
    records: str
    #: whether the value decides the reuse of an existing product: one of `REUSE`
    reuse: str
    #: ``"all"`` (primary and every map extension), ``"primary"`` or ``"maps"`` (map extensions)
    where: str
    meaning: str


#: How a keyword takes part in resume (`cosmiq_pyro.app.batch.predict_many`):
#: ``setting``: a product whose value differs was made another way: an error for that input
#: unless ``overwrite``; ``input``: a differing value means the input changed: the product is
#: redone; ``no``: recorded for the reader, never compared.
REUSE = ("setting", "input", "no")

#: The provenance keyword table: every keyword cosmiq_pyro writes into a product, one row each.
#: Branches that add a provenance value add its row here and its field to `Provenance`
#: (tests/test_products.py checks the two agree).
KEYWORDS = (
    Keyword("ORIGIN", "constant 'cosmiq_pyro'", "no", "all", "software that made this file"),
    Keyword("CQVERS", "Provenance.package_version", "setting", "all", "cosmiq_pyro version that made the product"),
    Keyword("CQMODEL", "Provenance.model_file", "no", "all",
            "base name of the model file (`fits_name`: percent-encoded UTF-8 where not printable ASCII); "
            "the model is identified by CQMSHA"),
    Keyword("CQMSHA", "Provenance.model_sha256", "setting", "all", "SHA-256 of the model file, 64 hex digits"),
    Keyword("CQMNAME", "Provenance.model_name", "no", "all",
            "the model used (`fits_text`): its published name (e.g. DECam-VI) or its file's base name; "
            "identified by CQMSHA"),
    Keyword("CQMREQ", "Provenance.model_request", "no", "all",
            "the model asked for (`fits_name`): auto (the default: chosen per input, CQMWHY says how), a "
            "published name or a checkpoint file; resume compares the model used (CQMSHA), not this"),
    Keyword("CQMWHY", "Provenance.model_reason", "no", "all",
            "why this model (`app.automodel`, `fits_text`): given; header KEY=value ... (the recognised camera's "
            "model); instrument=NAME given; or lowest novelty of N models (novelty less each model's own "
            "threshold), with the camera that has no model"),
    Keyword("CQKIND", "Provenance.model_kind", "no", "all",
            "model class: UNet2SigmoidVI (Bayesian) or UNet2Sigmoid (deterministic); follows from CQMSHA"),
    Keyword("CQMETHOD", "Provenance.method", "setting", "all",
            "predictive method: mc (Monte Carlo over CQT posterior draws), moments (sampling-free), "
            "or deterministic (a deterministic model's one pass)"),
    Keyword("CQT", "Provenance.T", "setting", "all",
            "posterior draws per pixel of a Monte Carlo method (1 for a deterministic model; absent for a "
            "sampling-free method)"),
    Keyword("CQTHRESH", "Provenance.threshold", "setting", "all", "MASK threshold: CR where PROB > CQTHRESH"),
    Keyword("CQSEED", "Provenance.seed", "setting", "all", "seed of the posterior draws"),
    Keyword("CQREAD", "Provenance.reading", "setting", "all",
            "reading options that decide the input pixels (`reading_options`): extension, assumed unit, "
            "gain, DQ bits ignored (camera: the spec's), and when given the camera spec (name:digest) and "
            "the exposure time"),
    Keyword("CQMAPS", "Provenance.maps", "setting", "all",
            "the map extensions asked for (`map_choice`, ``--maps``; MASK always), e.g. PROB,MASK; EPISTEMIC "
            "is written only for a Bayesian model and NOVELTY only for a model with a novelty model"),
    Keyword("CQSOURCE", "Provenance.source_file", "no", "all",
            "base name of the input file (`fits_name`); the input is identified by CQSRCSHA"),
    Keyword("CQSRCSHA", "Provenance.source_sha256", "input", "all",
            "SHA-256 of the input file's bytes (as stored, compressed or not)"),
    Keyword("DATE", "Provenance.date", "no", "all", "UTC time the product was made, ISO 8601"),
    Keyword("LONGSTRN", "'OGIP 1.0' when a value needs CONTINUE cards", "no", "all",
            "only when a value (a long file name) continues on CONTINUE cards: the long-string convention"),
    Keyword("CQSRCEXT", "HSTImage.extname, extver", "no", "maps", "input extension of these maps, e.g. SCI,1"),
    Keyword("CQBUNIT", "HSTImage.bunit_used", "no", "maps",
            "unit the input pixels were read as (BUNIT or the caller's); part of CQREAD when given"),
    Keyword("CQEPERU", "HSTImage.electrons_per_unit", "no", "maps", "factor from stored values to electrons"),
    Keyword("CQGAIN", "HSTImage.gain_e_per_adu", "no", "maps", "gain applied, e-/ADU (count units only)"),
    Keyword("CQINSTR", "HSTImage.instrument", "no", "maps",
            "camera spec the input was read with (cosmiq_pyro.instruments: its extensions, DQ bits, unit, "
            "gain keywords), recognised from the header or given (then part of CQREAD); NONE: no spec"),
    Keyword("CQIGNORE", "Prediction.ignore", "no", "maps",
            "pixels of this input extension that were ignored (DQ-flagged, NaN, fill value): NaN in the "
            "float maps, MASK = 2"),
    Keyword("CQPREC", "the map's encoding", "no", "maps",
            "bound on the absolute difference between a stored pixel of this map and the computed one: half "
            "the quantisation step of a float map plus float32 rounding, 0 for MASK (lossless)"),
    Keyword("CQNOVEL", "Prediction.novelty", "no", "maps",
            "the frame's novelty, 1 = 95th percentile of in-distribution frames (models with a novelty model)"),
    Keyword("CQISNOV", "Prediction.is_novel", "no", "maps",
            "T when CQNOVEL is above the model's threshold: the mask comes from a model used outside its data"),
)


def _provenance_keywords(reuse: str | None = None) -> dict:
    """``{Provenance field: keyword}`` of the `KEYWORDS` rows that record a Provenance field
    (those with ``reuse`` only, when given)."""
    prefix = "Provenance."
    return {row.records[len(prefix):]: row.keyword for row in KEYWORDS
            if row.records.startswith(prefix) and reuse in (None, row.reuse)}


def fits_name(name) -> str:
    """A file's base name as a FITS-legal string value: printable ASCII kept, every other
    character percent-encoded as UTF-8 bytes (and ``%`` itself as ``%25``), so
    `urllib.parse.unquote` gives the name back.  Long values become CONTINUE cards (astropy's
    long-string convention), never truncated.

    >>> fits_name("/data/Ωmega frame.fits")
    '%CE%A9mega frame.fits'
    """
    return fits_text(os.path.basename(os.fspath(name)))


def fits_text(text: str) -> str:
    """``text`` as a FITS-legal string value: printable ASCII kept, every other character
    percent-encoded as UTF-8 bytes (``%`` as ``%25``; `urllib.parse.unquote` reverses it)."""
    return quote(str(text), safe=_PRINTABLE_BUT_PERCENT)


_PRINTABLE_BUT_PERCENT = "".join(chr(c) for c in range(32, 127) if chr(c) != "%")


@dataclass(frozen=True)
class Provenance:
    """How a product was made; each field is a row of `KEYWORDS` (keyword in brackets).

    Attributes
    ----------
    model_file : str
        The model file used [CQMODEL: its base name, `fits_name`].
    model_sha256 : str
        SHA-256 of the model file, 64 hex digits [CQMSHA].
    model_kind : str
        ``"UNet2SigmoidVI"`` (Bayesian) or ``"UNet2Sigmoid"`` (deterministic) [CQKIND].
    model_name : str
        The model used: a published name or the checkpoint's base name [CQMNAME].
    model_request : str
        The model asked for: ``"auto"``, a published name or a checkpoint [CQMREQ: `fits_name`].
    model_reason : str
        Why the model was used (`app.automodel.ModelChoice.reason`) [CQMWHY].
    T : int or None
        Posterior draws per pixel of a Monte Carlo method (1 for the deterministic twin; None, and
        no card, for a sampling-free method) [CQT].
    threshold : float
        MASK threshold on PROB [CQTHRESH].
    seed : int
        Seed of the posterior draws [CQSEED].
    reading : str
        The reading options that decide the input pixels, `reading_options` [CQREAD]:
        extension, assumed unit, gain and DQ bits (``"ext=None bunit=None gain=None dq=..."``).
    maps : str
        The map extensions asked for, `map_choice` [CQMAPS].
    source_file : str
        The input file [CQSOURCE: its base name, `fits_name`].
    source_sha256 : str
        SHA-256 of the input file's bytes [CQSRCSHA]; "" when unknown (an array, not a file).
    method : str
        The predictive method (`cosmiq_pyro.inference.methods.METHODS`), ``"deterministic"``
        for a deterministic model [CQMETHOD].
    package_version : str
        cosmiq_pyro version [CQVERS].
    date : str
        UTC time the product was made, ISO 8601 [DATE].
    """

    model_file: str
    model_sha256: str
    model_kind: str
    T: int | None
    threshold: float
    seed: int
    reading: str = ""
    maps: str = ",".join(PRODUCT_EXTENSIONS)
    method: str = "mc"
    model_name: str = ""
    model_request: str = ""
    model_reason: str = ""
    source_file: str = ""
    source_sha256: str = ""
    package_version: str = __version__
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%dT%H:%M:%S"))

    #: Header keyword of each field (from `KEYWORDS`).
    KEYWORDS = _provenance_keywords()
    #: The fields whose values decide a product's pixels from the same input (`KEYWORDS` rows
    #: with reuse ``setting``): a product with other values was made another way.
    RUN_FIELDS = tuple(_provenance_keywords("setting"))
    #: The fields that identify the input (reuse ``input``): a product with other values was made
    #: from another version of the input and is redone.
    INPUT_FIELDS = tuple(_provenance_keywords("input"))
    #: Keywords a product of an older version may lack (their value then reads as "").
    OPTIONAL_KEYWORDS = ("CQREAD", "CQMAPS", "CQSOURCE", "CQSRCSHA", "CQMETHOD", "CQT", "CQMNAME", "CQMREQ",
                         "CQMWHY")

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
        values = {name: header.get(key, "") for name, key in cls.KEYWORDS.items()}
        values["T"] = header.get("CQT")  # None: a sampling-free method's product
        return cls(**values)

    def differences(self, other: "Provenance", names=None) -> list[str]:
        """One ``"CQT 8, not 16"`` line per field in ``names`` (default `RUN_FIELDS`) whose value
        in ``self`` differs from ``other``'s."""
        lines = []
        for name in self.RUN_FIELDS if names is None else names:
            ours, theirs = getattr(self, name), getattr(other, name)
            if ours != theirs:
                if name.endswith("sha256"):  # a prefix is enough to tell two digests apart
                    ours, theirs = f"{ours[:12]}...", f"{theirs[:12]}..."
                lines.append(f"{self.KEYWORDS[name]} {ours!r}, not {theirs!r}")
        return lines

    def cards(self) -> list[tuple]:
        """(keyword, value, comment) header cards, in the order of `KEYWORDS`."""
        values = {"ORIGIN": "cosmiq_pyro"}
        for name, key in self.KEYWORDS.items():
            value = getattr(self, name)
            if name in ("model_file", "source_file", "model_request"):
                value = fits_name(value)
            elif name in ("model_name", "model_reason"):
                value = fits_text(value)
            elif name == "T" and value is None:
                continue  # a sampling-free method makes no draws: no CQT card
            elif name in ("T", "seed"):
                value = int(value)
            elif name == "threshold":
                value = float(value)
            values[key] = value
        return [(row.keyword, values[row.keyword], _CARD_COMMENTS.get(row.keyword, ""))
                for row in KEYWORDS if row.keyword in values]

    def header(self) -> fits.Header:
        """The cards as a header, built (and so checked FITS-legal) without writing anything."""
        header = fits.Header()
        cards = self.cards()
        for key, value, comment in cards:
            header[key] = (value, comment)
        if any(isinstance(value, str) and len(value) > _SHORT_STRING for _, value, _ in cards):
            header["LONGSTRN"] = ("OGIP 1.0", "long strings continue on CONTINUE cards")
        return header


# longest string value that fits one card (80 - 10 for the keyword and '= ', 2 quotes)
_SHORT_STRING = 68
# short card comments (long string values get none: no room)
_CARD_COMMENTS = {"ORIGIN": "software that made this file", "CQVERS": "cosmiq_pyro version",
                  "CQKIND": "model class", "CQMETHOD": "predictive method", "CQT": "posterior draws per pixel",
                  "CQTHRESH": "MASK = PROB > CQTHRESH", "CQSEED": "seed of the posterior draws",
                  "DATE": "UTC date this file was written"}


def reading_options(ext=None, bunit=None, gain_e_per_adu=None, dq_flags=None, instrument=None,
                    exptime_s=None) -> str:
    """The `fitsio.read_hst` options that decide a product's input pixels, as one header value.

    Two runs whose values are equal read the same pixels from the same file, so a product made
    with other reading options is never taken for this run's (``predict_many``'s resume).
    ``dq_flags=None`` (the camera spec's bits) reads ``dq=camera``; a given ``instrument`` (name,
    spec path or `Instrument`) adds ``instrument=<its name>:<Instrument.digest>``, so an edited
    spec file reads as other options; a given ``exptime_s`` adds ``exptime=<seconds>``.
    """
    gain = None if gain_e_per_adu is None else float(gain_e_per_adu)
    dq = "camera" if dq_flags is None else int(dq_flags)
    text = f"ext={ext} bunit={bunit} gain={gain} dq={dq}"
    if exptime_s is not None:
        text += f" exptime={float(exptime_s)}"
    if instrument is None:
        return text
    spec = get_instrument(instrument)
    return f"{text} instrument={spec.name}:{spec.digest()}"


def map_choice(maps=None) -> str:
    """The map extensions to write, as CQMAPS records them: names from `PRODUCT_EXTENSIONS` in
    its order, comma-separated, MASK always among them.

    Parameters
    ----------
    maps : str or sequence of str, optional
        ``"PROB,ENTROPY"`` or ``["PROB", "ENTROPY"]`` (any case); default: all of them.

    >>> map_choice("prob")
    'PROB,MASK'
    """
    if maps is None:
        return ",".join(PRODUCT_EXTENSIONS)
    names = maps.split(",") if isinstance(maps, str) else list(maps)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"maps must be names of {', '.join(PRODUCT_EXTENSIONS)}, got {maps!r}")
    wanted = {n.strip().upper() for n in names if n.strip()} | {"MASK"}
    unknown = sorted(wanted - set(PRODUCT_EXTENSIONS))
    if unknown:
        raise ValueError(f"maps: unknown map(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(PRODUCT_EXTENSIONS)} (MASK is always written)")
    return ",".join(n for n in PRODUCT_EXTENSIONS if n in wanted)
