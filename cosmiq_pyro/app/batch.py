"""Many frames: `predict_many` over files, directories, globs and lists, serially or on Dask.

Each input FITS file gets the product `products.predict_fits` writes (``<name>_cosmiq.fits``
in ``outdir``), and one row of the returned table says what became of it:

* ``done``: the product was written (atomically: complete or absent);
* ``skipped``: a product made from the same input (its SHA-256, CQSRCSHA) with the same
  settings (the `provenance.KEYWORDS` rows with reuse ``setting``: package version, model SHA-256,
  method, T, seed, threshold, reading options) already exists; ``overwrite=True`` makes it again.
  The model compared is the one used (CQMSHA), not the one asked for (CQMREQ): with ``"auto"``
  each frame's model is chosen first (`automodel`), so a product made with ``--model DECam-VI``
  is skipped by an ``auto`` run that picks DECam-VI for it, and redone by none;
* ``redone``: a product exists but its input changed since (another CQSRCSHA: a new file of the
  same name, or one re-reduced in place), or it is damaged (truncated, checksums wrong, maps
  missing); it is made again and ``note`` says why;
* a product that appears, with the same input and settings, after the batch was planned (made
  by another run into the same directory, or by an earlier try of a task whose worker died)
  is ``done``, with a note saying so;
* ``failed``: the input could not be read or predicted, or an existing product was made with
  other settings; ``error`` says why, naming the input, and the batch goes on.

Every input runs as a job (`_run_job`) that first chooses its model (``"auto"``: the primary
header decides, or, for a camera without a model of its own, the novelty rule, which reads the
pixels) and then judges an existing product (hashing the input, on the worker that runs it), so
resume costs one read of each input, plus one encoder pass per candidate model for a frame the
novelty rule decides.

Serial by default, in the calling process.  With ``client=`` (a `distributed.Client`) every
frame is a task: the worker loads each model once (`modelcache.cached_model`), reads the frame,
predicts and writes the product itself with numpy and astropy (astropy cannot write dask
arrays from distributed workers, astropy issue 11159), and sends back only the row.  Every
frame is predicted with the same ``seed``, whichever worker runs it and whenever: the same
``T`` weight draws for every frame of a batch, so a product is reproduced from its header
alone, and products are identical, bit for bit, to a serial run's (but for the DATE keyword,
the time the file was written).  A task whose worker dies is retried once (`workers.local_client`
sets the scheduler's ``allowed-failures`` to 1; an exception inside a task is retried once too,
``retries=1``) and then reported as failed.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from tqdm.auto import tqdm

from ..io.atomic import check_writable_directory, file_lock
from ..io.digest import file_sha256
from ..io.fitsio import read_hst
from ..inference.draws import check_draws
from ..inference.methods import check_method, run_settings
from ..utils.checks import check_float, check_seed
from . import products, provenance
from .inputs import FITS_SUFFIXES, expand_inputs, product_name
from .automodel import ModelChoice, camera_choice, candidate_models, given_model, is_auto, novelty_choice
from .modelcache import DEFAULT_MODEL, cached_model
from .productcheck import product_damage
from .provenance import Provenance

__all__ = ["predict_many", "expand_inputs", "product_name", "summary", "COLUMNS", "STATUSES", "FITS_SUFFIXES"]

#: Columns of the table `predict_many` returns.
COLUMNS = ("input", "output", "status", "seconds", "cr_pixels", "novelty", "model", "model_reason", "error", "note")
#: The statuses of a row, in the order `summary` counts them.
STATUSES = ("done", "redone", "skipped", "failed")
# errors that belong to one input (unreadable, not FITS, bad units, output clash): reported, not retried
_INPUT_ERRORS = (ValueError, TypeError, OSError, EOFError, VerifyError)
# options of predict_fits that predict_many sets itself
_OWN_OPTIONS = {"model", "in_path", "out_path", "model_file", "overwrite", "progress", "images"}
# the options of read_hst among predict_fits's (the reading options)
_READING = ("ext", "bunit", "gain_e_per_adu", "dq_flags", "instrument", "exptime_s")
# the note of a product that appeared after the batch was planned, with this batch's provenance
_MEANWHILE = "made meanwhile (by another run, or by an earlier try of this task)"
# Pyro's handler stack is process-global: one prediction at a time per worker process
_PREDICT_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Job:
    """One frame to predict: everything a worker needs, picklable."""

    input: str
    output: str
    model: str  # as asked for: "auto", a published name or a checkpoint path
    expected: Provenance  # how the product is made (the settings of the skip test; with "auto" the
    # model's fields are this frame's choice's, `_with_model`)
    overwrite: bool
    existed: bool  # the product existed when the batch was planned
    options: dict = field(default_factory=dict)


def predict_many(inputs, model=DEFAULT_MODEL, outdir=".", *, client=None, overwrite: bool = False,
                 progress: bool | None = None, **predict_options) -> pd.DataFrame:
    """Predict every input frame and write its FITS product; one bad input never stops the batch.

    Parameters
    ----------
    inputs : str, os.PathLike or sequence of them
        FITS files, directories (see `expand_inputs`), glob patterns (``"visit*/j*_flc.fits"``)
        and ``"@list.txt"`` files naming one input per line.
    model : str or os.PathLike
        ``"auto"`` (`DEFAULT_MODEL`): per frame, the model of the camera recognised from the
        header (or given as ``instrument=``), else the shipped model with the lowest novelty
        margin (`automodel`: the rule, and the keywords CQMNAME, CQMREQ, CQMWHY that record it);
        or a published model name or a cosmiq_pyro checkpoint, used for every frame.  The file
        must be readable at the same path on every worker.
    outdir : str or os.PathLike
        Where the products go (created if needed; default the current directory).
    client : distributed.Client, optional
        Run the frames as tasks on this Dask cluster (`workers.local_client` makes a local one);
        default: serially in this process.  Each worker is set to one torch thread
        (`workers.TorchThreads`) and runs one frame at a time per process (Pyro's handler
        stack is process-global): give workers one thread each and scale with processes.
        The model (with ``"auto"``: every candidate model) is also loaded once in the calling
        process, to check it before any frame runs.
    overwrite : bool
        Make every product again, even where one with the same provenance exists (and where
        one made with other settings exists).
    progress : bool, optional
        A tqdm bar over frames (default: shown when stderr is a terminal).
    **predict_options
        Passed to `products.predict_fits` for every frame: ``method``, ``T``, ``threshold``, ``seed``,
        ``tile``, ``dq_flags``, ``device``, ``maps`` (the map extensions written, MASK always),
        and the reading options it takes (``ext``, ``bunit``, ``gain_e_per_adu``, ``instrument``,
        ``exptime_s``).

    Returns
    -------
    pandas.DataFrame
        One row per input frame, in input order, with `COLUMNS`: ``input`` and ``output``
        paths, ``status`` (`STATUSES`: ``"done"``, ``"redone"``, ``"skipped"``, ``"failed"``;
        see the module docstring), ``seconds`` (reading, prediction and writing of a done or
        redone frame; the first frame of each worker does not include loading the model),
        ``cr_pixels`` (MASK pixels set, all extensions, done and redone frames), ``novelty``
        (the largest CQNOVEL of the product's extensions when the model gives a novelty score,
        else NaN), ``model`` and ``model_reason`` (the model used for the frame and why, as
        CQMNAME and CQMWHY; empty when the frame failed before its model was chosen), ``error``
        (empty unless failed) and ``note`` (why a product was redone).

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        Before any frame runs: an input pattern, directory or list that names no file, two
        inputs that would write the same product, an unknown option, a bad ``T``, ``seed``
        or ``threshold``, a model that cannot be loaded, an ``outdir`` that is not a
        writable directory (unless it holds every product already, each made with this
        batch's provenance from the same input: then they are reported ``skipped``).

    Examples
    --------
    >>> from cosmiq_pyro import predict_many                          # doctest: +SKIP
    >>> table = predict_many("visit1/", outdir="products")            # doctest: +SKIP
    >>> from cosmiq_pyro.app.workers import local_client              # doctest: +SKIP
    >>> with local_client(4) as client:                               # doctest: +SKIP
    ...     table = predict_many("@frames.txt", outdir="products", client=client)
    """
    options = _checked_options(predict_options)
    frames = expand_inputs(inputs)
    outdir = Path(outdir)
    outputs = [outdir / product_name(path) for path in frames]
    _refuse_clashes(frames, outputs)
    try:
        check_writable_directory(outdir)  # before any work
        unwritable = None
    except PermissionError as err:  # fine if every product is there already: nothing to write
        if overwrite or not all(out.is_file() for out in outputs):
            raise
        unwritable = err
    template = Provenance(model_file="", model_sha256="", model_kind="", T=None, method="",
                          threshold=float(options.get("threshold", _default("threshold"))),
                          seed=int(options.get("seed", _default("seed"))),
                          reading=provenance.reading_options(*(options.get(k, _default(k)) for k in _READING)),
                          maps=provenance.map_choice(options.get("maps")))
    if is_auto(model):
        for name in candidate_models():  # every model "auto" may choose loads, before any frame runs
            cached_model(name, options.get("device"))
        if options.get("instrument") is not None:  # a given camera's model, checked before any frame runs
            camera_choice(None, instrument=options["instrument"], device=options.get("device"))
        expected = template
    else:
        choice = given_model(model, options.get("device"))
        if not choice.bayesian and options.get("T") not in (None, 1):
            warnings.warn(f"T={options['T']} was not used: model {os.fspath(model)!r} is deterministic "
                          "(one pass per frame, no EPISTEMIC map)", UserWarning, stacklevel=2)
        if not choice.bayesian:
            options.pop("T", None)
        expected = _with_model(template, choice, options)
    created = [folder for folder in (outdir, *outdir.parents) if not folder.exists()]  # deepest first
    outdir.mkdir(parents=True, exist_ok=True)

    rows: dict[int, dict] = {}
    jobs = {i: _Job(input=str(source), output=str(out), model=os.fspath(model), expected=expected,
                    overwrite=overwrite, existed=out.exists(), options=options)
            for i, (source, out) in enumerate(zip(frames, outputs))}
    if unwritable is not None:
        return _judged_without_writing(jobs, unwritable)
    bar = tqdm(total=len(frames), unit="frame", desc="frames", disable=None if progress is None else not progress)
    try:
        results = _run_serial(jobs) if client is None else _run_on(client, jobs)
        for i, row in results:
            rows[i] = row
            bar.update(1)
            bar.set_postfix(failed=sum(r is not None and r["status"] == "failed" for r in rows.values()))
    finally:
        bar.close()
        for folder in created:  # nothing written there: leave no empty directory behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return pd.DataFrame([rows[i] for i in range(len(frames))], columns=list(COLUMNS))


def summary(table: pd.DataFrame) -> str:
    """One line: counts per status (`STATUSES`), the time per made frame (done or redone:
    median, min, max) and the model(s) used and why (with the number of frames of each when
    there are several)."""
    counts = {status: int((table["status"] == status).sum()) for status in STATUSES}
    text = ", ".join(f"{n} {status}" for status, n in counts.items())
    seconds = table.loc[table["status"].isin(("done", "redone")), "seconds"].to_numpy(dtype=float)
    if seconds.size:
        text += (f"; {np.median(seconds):.3g} s per frame (median; min {seconds.min():.3g}, "
                 f"max {seconds.max():.3g})")
    used = [_model_text(row) for row in table.itertuples() if row.model]
    if used:
        counts = {name: used.count(name) for name in dict.fromkeys(used)}  # first-seen order
        text += "; " + ("model " if len(counts) == 1 else "models ") + ", ".join(
            name if len(counts) == 1 else f"{name} for {n} frame{'s' * (n != 1)}" for name, n in counts.items())
    return text


def _model_text(row) -> str:
    """``"DECam-VI (header INSTRUME=DECam)"`` of a table row."""
    return f"{row.model} ({row.model_reason})" if row.model_reason else str(row.model)


def _refuse_clashes(frames, outputs) -> None:
    seen = {}
    for source, out in zip(frames, outputs):
        if out.name in seen:
            raise ValueError(f"inputs {str(seen[out.name])!r} and {str(source)!r} would both write "
                             f"{out.name}; run them with different outdir")
        seen[out.name] = source


# --------------------------------------------------------------------------- options


def _keyword_options(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in _OWN_OPTIONS}


_OPTIONS = _keyword_options(products.predict_fits)  # option -> default, read once


def _default(name):
    return _OPTIONS[name]


def _checked_options(options: dict) -> dict:
    allowed = _OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"predict_many() got unknown option(s) {', '.join(unknown)}; "
                        f"expected some of {', '.join(sorted(allowed))}")
    options = {name: (value.item() if isinstance(value, np.generic) else value) for name, value in options.items()}
    if options.get("T") is not None:
        check_draws(options["T"])
    check_method(options.get("method"), options.get("T"))
    check_seed(options.get("seed", 0))
    check_float(options.get("threshold", 0.5), "threshold", minimum=0.0, maximum=1.0)
    if options.get("maps") is not None:
        options["maps"] = provenance.map_choice(options["maps"])
    return options


# --------------------------------------------------------------------------- running


def _with_model(template: Provenance, choice: ModelChoice, options: dict) -> Provenance:
    """``template`` with the model fields (and the method and T that follow from the model's
    kind) of ``choice``."""
    method, draws = run_settings(options.get("method"), options.get("T") if choice.bayesian else None,
                                 choice.bayesian)
    return dataclasses.replace(template, model_file=os.fspath(choice.weights_file), model_sha256=choice.sha256,
                               model_kind=type(choice.result.model).__name__, T=draws, method=method,
                               model_name=choice.name, model_request=choice.requested,
                               model_reason=choice.reason)


def _choose(job: _Job):
    """``(choice, provenance expected, images or None)`` of a job: its model (``"auto"``: chosen
    for this frame), the provenance its product must have, and the frame when the novelty rule
    had to read it (so it is not read twice)."""
    device = job.options.get("device")
    if not is_auto(job.model):
        choice = given_model(job.model, device)
        if choice.sha256 != job.expected.model_sha256:
            raise ValueError(f"model {job.model!r} read here has SHA-256 {choice.sha256[:12]}..., the batch "
                             f"uses {job.expected.model_sha256[:12]}... (a different file at the same path?)")
        return choice, job.expected, None
    reading = {key: job.options[key] for key in _READING if key in job.options}
    images = None
    try:
        header = fits.getheader(job.input, 0, memmap=False)
    except Exception:  # noqa: BLE001 -- unreadable: the reader says why, in its own words
        images = read_hst(job.input, **reading)
        header = images[0].primary_header
    choice = camera_choice(header, instrument=reading.get("instrument"), device=device)
    if choice is None:
        images = read_hst(job.input, **reading) if images is None else images
        choice = novelty_choice([(im.image, im.ignore) for im in images], header=images[0].primary_header,
                                instrument=reading.get("instrument"), device=device)
    return choice, _with_model(job.expected, choice, job.options), images


def _judge(job: _Job, expected: Provenance, choice: ModelChoice):
    """What to do with the existing product of ``job``: a row (skipped, or failed: made with
    other settings), or the reason to make it again (a str: damaged, input changed)."""
    damage = product_damage(job.output)
    if damage:
        return f"damaged ({damage})"
    made = Provenance.from_header(fits.getheader(job.output, 0, memmap=False))
    differences = made.differences(expected)
    if differences:
        return _row(job, "failed", choice, error=f"{job.output!r} exists, made with {'; '.join(differences)}; "
                    "pass overwrite=True (--overwrite) to replace it")
    source = file_sha256(job.input)  # the input must be readable to be judged
    if made.source_sha256 != source:
        was = f"{made.source_sha256[:12]}..." if made.source_sha256 else "not recorded"
        return f"input changed (CQSRCSHA {was}, now {source[:12]}...)"
    if not job.existed:  # made after the batch was planned: what it asked for, and fresh
        return _row(job, "done", choice, cr_pixels=_cr_pixels(job.output), novelty=_novelty(job.output),
                    note=_MEANWHILE)
    return _row(job, "skipped", choice, novelty=_novelty(job.output))


def _judged_without_writing(jobs: dict, unwritable: PermissionError) -> pd.DataFrame:
    """The table of a batch whose output directory is read-only: every existing product judged
    (skipped, or failed when made with other settings); ``unwritable`` is raised when one of
    them would have to be made again (damaged, or its input changed)."""
    rows = []
    for job in jobs.values():
        try:
            choice, expected, _ = _choose(job)
            verdict = _judge(job, expected, choice)
        except _INPUT_ERRORS as err:
            verdict = _row(job, "failed", error=_describe(err))
        if not isinstance(verdict, dict):
            raise PermissionError(f"{unwritable} and {job.output!r} must be made again ({verdict})") from None
        rows.append(verdict)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _run_serial(jobs: dict):
    """Rows of the jobs, in order, except that a product locked by another run (`atomic.file_lock`)
    is left for the end (and then waited for), so two runs into one directory share the work."""
    busy = {}
    for pass_jobs, wait in ((jobs, False), (busy, True)):
        for i, job in list(pass_jobs.items()):
            try:
                row = _run_job(job, wait=wait)
            except Exception as err:  # noqa: BLE001 -- an unforeseen error in one frame: report it, go on
                row = _row(job, "failed", error=f"{type(err).__name__}: {_describe(err)}")
            if row is None:
                busy[i] = job
            else:
                yield i, row


def _run_on(client, jobs: dict):
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from .workers import TorchThreads

    if not jobs:
        return
    client.register_plugin(TorchThreads(1))
    order = list(jobs)
    futures = client.map(_run_job, [jobs[i] for i in order], retries=1, pure=False)
    index = {future.key: i for future, i in zip(futures, order)}
    try:
        for future in as_completed(futures):
            i = index[future.key]
            try:
                row = future.result()
            except Exception as err:  # noqa: BLE001 -- KilledWorker, or an error raised twice
                what = "the workers running it died" if isinstance(err, KilledWorker) else type(err).__name__
                row = _row(jobs[i], "failed", error=f"{what} (retried once): {_describe(err)}")
            future.release()
            yield i, row
    finally:
        client.cancel([f for f in futures if not f.done()])


def _run_job(job: _Job, wait: bool = True) -> dict | None:
    """Judge an existing product, predict the frame and write its product when needed (in a
    Dask worker, or serially); return its row.

    The product's `atomic.file_lock` is held throughout, so a second run making the same
    product waits and then finds it made (or, with ``wait=False``, returns None at once).  A run
    whose product appears under it anyway (no lock: another host, a file system without
    ``flock``) finds the product at the final rename and judges it like any existing one.
    """
    with file_lock(job.output, blocking=wait) as locked:
        if not locked:
            return None
        try:
            return _make(job)
        except _INPUT_ERRORS as err:
            return _row(job, "failed", error=_describe(err))


def _make(job: _Job) -> dict:
    choice, expected, images = _choose(job)
    redo = ""
    if not job.overwrite and os.path.exists(job.output):
        verdict = _judge(job, expected, choice)
        if isinstance(verdict, dict):
            return verdict
        redo = verdict
    options = job.options if choice.bayesian or not is_auto(job.model) else {
        key: value for key, value in job.options.items() if key != "T"}  # "auto" chose a deterministic model
    start = time.perf_counter()
    try:
        with _PREDICT_LOCK:
            products.predict_fits(choice, job.input, job.output, overwrite=job.overwrite or bool(redo),
                                  progress=False, images=images, **options)
    except FileExistsError:  # another run wrote it first (it lost no race: it finished first)
        verdict = _judge(job, expected, choice)
        if not isinstance(verdict, dict) or verdict["status"] not in ("done", "skipped"):
            raise
        return {**verdict, "status": "done", "seconds": time.perf_counter() - start, "note": _MEANWHILE,
                "cr_pixels": _cr_pixels(job.output)}
    return _row(job, "redone" if redo else "done", choice, seconds=time.perf_counter() - start,
                cr_pixels=_cr_pixels(job.output), novelty=_novelty(job.output), note=redo)


def _cr_pixels(product: str) -> int:
    """Cosmic-ray pixels of a product: MASK & MASK_CR over its extensions (ignored pixels left out)."""
    with fits.open(product) as hdul:
        return int(sum(np.count_nonzero(hdu.data & products.MASK_CR) for hdu in hdul if hdu.name == "MASK"))


def _novelty(product: str) -> float:
    """Largest CQNOVEL among the product's extension headers (NaN when the model gives none)."""
    with fits.open(product) as hdul:
        scores = [float(hdu.header["CQNOVEL"]) for hdu in hdul if "CQNOVEL" in hdu.header]
    return max(scores) if scores else float("nan")


def _row(job: _Job, status: str, choice: ModelChoice | None = None, *, seconds: float = float("nan"),
         cr_pixels=None, novelty=float("nan"), error: str = "", note: str = "") -> dict:
    return {"input": job.input, "output": job.output, "status": status, "seconds": seconds,
            "cr_pixels": cr_pixels, "novelty": novelty, "model": "" if choice is None else choice.name,
            "model_reason": "" if choice is None else choice.reason, "error": _name_input(job.input, error),
            "note": note}


def _name_input(source: str, error: str) -> str:
    if not error or source in error:
        return error
    return f"{source}: {error}"


def _describe(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    return " ".join((text or type(err).__name__).split())
