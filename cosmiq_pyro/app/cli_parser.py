"""The argparse parser of ``cosmiq`` (`build_parser`): its subcommands and option types.

Each subcommand's ``run`` default is its function in `cosmiq_pyro.app.cli_runs`; a bad option
value raises `CommandError` (one line, exit status 2) instead of printing usage and exiting.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from .._version import __version__
from ..data.seeds import HELD_OUT_SEED
from ..models.defaults import DEFAULT_MODEL
from ..utils.checks import MAX_INT64, MAX_SEED
from .cli_runs import (CommandError, run_adapt, run_compare, run_demo, run_evaluate, run_predict, run_simulate,
                       run_train)

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message):
        raise CommandError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``cosmiq`` and its subcommands."""
    parser = _Parser(prog="cosmiq", description="Cosmic-ray detection with calibrated uncertainty "
                     "for HST ACS/WFC-style CCD images (cosmiq_pyro).")
    parser.add_argument("--version", action="version", version=f"cosmiq_pyro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("simulate", help="simulate frames of a camera with CR truth (deepCR 'pair' files)",
                       description="Simulate frames of a camera (ACS/WFC unless --instrument says) with "
                       "cosmic rays and write them in deepCR's 'pair' layout (NNNNNN_<field>_<filter>.npy = "
                       "[image, CR mask, ignore], sky.npy), meta.csv (one row per frame, the pair file's name "
                       "in column 'file'; frames are numbered from 000001) and a few FITS previews (SCI, "
                       "CRMASK, IGNORE; TELESCOP / INSTRUME / DETECTOR from the camera's spec) that "
                       "'cosmiq predict' reads.")
    p.add_argument("outdir", metavar="OUTDIR", help="new (or empty) directory to create")
    p.add_argument("--instrument", default="ACS-WFC", metavar="NAME|SPEC.toml",
                   help="camera: a shipped spec (ACS-WFC, WFC3-UVIS, DECam) or the path of a TOML spec "
                   "with a [simulation] section (default ACS-WFC)")
    p.add_argument("--n", type=_positive_int, default=512, help="number of frames (default 512)")
    p.add_argument("--size", type=_size, default=256, help="frame side in pixels (default 256)")
    p.add_argument("--fields", type=_names, default=None, help="comma-separated field "
                   "types among EX,GC,GAL (default the spec's: all three)")
    p.add_argument("--filters", type=_names, default=None,
                   help="comma-separated filters of the camera (default all the spec's; ACS-WFC: "
                   "F435W,F606W,F814W)")
    p.add_argument("--exptime", type=_range, default=None, metavar="MIN,MAX",
                   help="exposure time range in s, log-uniform (default the spec's, ACS-WFC 100,1200; "
                   "one number fixes it)")
    p.add_argument("--seed", type=_seed, default=0, help="dataset seed (default 0)")
    p.add_argument("--labels", choices=("drizcr", "sigma"), default=None,
                   help="CR truth rule (default the spec's): drizcr = AstroDrizzle's driz_cr with its "
                   "defaults, as real ACS/WFC and WFC3/UVIS masks; sigma = CR charge above k sigma of the "
                   "pixel's noise (k from the spec: DECam's median-coadd labels)")
    p.add_argument("--cr-rate-multiplier", type=_multiplier, default=1.0, metavar="M|training",
                   help="factor on the camera's real CR rate, recorded in meta.csv (default 1: frames to "
                   "test on); 'training' takes the spec's training-set factor and minimum count of CR "
                   "pixels (DECam: 50x, ground CRs are sparse)")
    p.add_argument("--previews", type=_nonnegative_int, default=3, help="FITS previews of the first "
                   "frames (default 3)")
    p.add_argument("--overwrite", action="store_true", help="write into an existing non-empty OUTDIR")
    p.set_defaults(run=run_simulate)

    p = sub.add_parser("train", help="train the deterministic twin or the Bayesian (VI) model",
                       description="Train a model on DATA (a directory of deepCR pair files, or "
                       "simulate:N) with deepCR's schedule (90/10 split, two batch-norm phases) and "
                       "write one checkpoint holding the best validation epoch. Ctrl-C keeps the "
                       "best epoch so far; --resume continues from the checkpoint.")
    p.add_argument("data", metavar="DATA", help="directory of pair .npy files, or simulate:N")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--bayesian", dest="bayesian", action="store_true", help="variational model (SVI)")
    kind.add_argument("--deterministic", dest="bayesian", action="store_false", help="deterministic twin")
    p.add_argument("--out", required=True, type=Path, metavar="MODEL.pth", help="checkpoint to write")
    p.add_argument("--epochs", type=_positive_int, default=50, help="total epochs (default 50)")
    p.add_argument("--epoch-phase0", type=_nonnegative_int, default=None,
                   help="epochs with batch statistics (default round(0.4 * epochs))")
    p.add_argument("--hidden", type=_positive_int, default=None,
                   help="first-level channels (default 32, or --init-from's)")
    p.add_argument("--norm", choices=("batch", "group", "none"), default="batch",
                   help="normalisation layers (default batch)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="minibatch size (default 16)")
    p.add_argument("--lr", type=_positive_float, default=None, help="Adam learning rate (default 0.005)")
    p.add_argument("--kl-beta", type=_positive_float, default=None, help="KL weight, --bayesian (default "
                   "1 / pixels per frame: the exact per-pixel ELBO)")
    p.add_argument("--prior", choices=("iid", "kaiming", "centred"), default="iid",
                   help="--bayesian: weight prior: iid N(0, s^2), layer-wise Kaiming N(0, g^2/fan_in), or "
                   "N(w, s^2) centred on --init-from's weights (default iid)")
    p.add_argument("--prior-scale", type=_positive_float, default=None,
                   help="--bayesian: the prior's s (iid: default 1; centred: default 0.1) or Kaiming gain g "
                   "(default sqrt 2)")
    p.add_argument("--init-from", type=Path, default=None, metavar="DET.pth",
                   help="--bayesian: start the posterior means from this deterministic checkpoint")
    p.add_argument("--init-scale", type=_positive_float, default=1e-3,
                   help="--bayesian: initial posterior sd of every weight (default 0.001)")
    p.add_argument("--size", type=_size, default=256, help="frame side for simulate:N (default 256)")
    p.add_argument("--darks", type=Path, default=None, metavar="DIR",
                   help="deepCR's 'simulate' mode: DATA holds CR-free images (.npy, (W, W) or [image, ignore]) "
                   "and DIR dark frames (.npy, [CR charge, CR mask]); each image gets one dark's cosmic rays")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of initialisation, split, shuffling and simulate:N frames (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (else refused)")
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or epoch table")
    p.set_defaults(run=run_train)

    p = sub.add_parser("adapt", help="make a Bayesian model for a camera with the ACS-WFC-VI recipe",
                       description="Make a Bayesian CR model for a camera (cosmiq_pyro.adapt): the prior centred "
                       "on --from's weights, the ACS-WFC-VI recipe (exact ELBO, scales with their own learning "
                       "rate, temperature fitted on held-out validation frames, novelty model fitted), trained on "
                       "simulated frames of the camera, on your CR-free images plus dark frames (--images, "
                       "--darks: deepCR's 'simulate' data), or both (give --n-frames too). Writes one checkpoint "
                       "with its model card. Resumable: --chunk-epochs N runs N epochs per call; call again.")
    p.add_argument("--instrument", required=True, metavar="NAME|SPEC.toml", help="camera name or spec file")
    p.add_argument("--from", dest="start", required=True, metavar="MODEL",
                   help="starting model: a published name (ACS-WFC, WFC3-UVIS, decam, ...) or a checkpoint")
    p.add_argument("--out", required=True, type=Path, metavar="MODEL.pth", help="checkpoint to write")
    p.add_argument("--images", type=Path, default=None, metavar="DIR", help="CR-free images (.npy, electrons)")
    p.add_argument("--darks", type=Path, default=None, metavar="DIR", help="dark frames (.npy, [CR charge, CR mask])")
    p.add_argument("--n-frames", type=_nonnegative_int, default=None,
                   help="simulated training frames (default 512; 0 with --images)")
    p.add_argument("--size", type=_size, default=None, help="simulated frame side (default 256, or the images')")
    p.add_argument("--epochs", type=_positive_int, default=None, help="total epochs (default 6)")
    p.add_argument("--chunk-epochs", type=_positive_int, default=None, help="at most this many epochs in this call")
    p.add_argument("--work", type=Path, default=None, metavar="DIR",
                   help="run directory between chunks (default OUT's stem + .adapt, removed when done)")
    p.add_argument("--recipe", type=_recipe_item, action="append", default=None, metavar="KEY=VALUE",
                   help="override one value of the recipe (repeatable; VALUE is read as JSON, else as a word), "
                   "e.g. --recipe star_core_weight=30 --recipe prior_scale=0.3 --recipe 'star_core_weight=[90, 30]'; "
                   "keys: cosmiq_pyro.inference.adaptation.ACS_WFC_VI; the model card records the whole recipe")
    p.add_argument("--overwrite", action="store_true", help="replace an --out made otherwise")
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_adapt)

    p = sub.add_parser("predict", help="CR probability, entropy, epistemic and mask maps of FITS files",
                       description="For each input FITS file write OUTDIR/<name>_cosmiq.fits with, per SCI "
                       "extension, PROB, ENTROPY, EPISTEMIC (float32, tile-compressed to 2e-5) and MASK (uint8) extensions carrying "
                       "the input's WCS, identifying keywords and provenance (model SHA-256, T, threshold, "
                       "seed). Pixels are read in electrons (BUNIT converted); DQ-flagged pixels are ignored. "
                       "An input whose product exists with the same input and provenance is skipped, one whose input changed or that is damaged is redone; a bad input gets "
                       "one error line and the others go on. Exit status: 0 when no input failed, 1 when "
                       "some did, 2 for usage errors.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FITS files (HST _flc/_flt or any image), "
                   "directories (their FITS files; only the _flc/_flt exposures where there are some), glob "
                   "patterns, or @LIST.txt (one input per line)")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="MODEL", help=f"{DEFAULT_MODEL} (default): per "
                   "input, the shipped model of the camera recognised from the header or given by --instrument (its "
                   "spec's [models] published, e.g. DECam-VI), else the shipped model that finds the frame least "
                   "novel; or one model for every input: a published name (e.g. ACS-WFC-VI; ACS-WFC is deepCR's "
                   "weights and needs the deepCR package) or a cosmiq_pyro checkpoint. The product's CQMNAME and "
                   "CQMWHY and each output line say which model was used and why")
    _method_option(p)
    p.add_argument("-T", type=_positive_int, default=None, help="posterior draws per pixel of a Bayesian "
                   "model and a Monte Carlo method (default 16, at most 65536); -T without --method means "
                   "--method mc, -T with a sampling-free method is an error; a deterministic model makes one "
                   "pass and says that -T was not used")
    p.add_argument("--threshold", type=_probability, default=0.5, help="MASK = PROB > threshold (default 0.5)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the posterior draws (default 0)")
    p.add_argument("-o", "--outdir", type=Path, default=Path("."), metavar="OUTDIR",
                   help="output directory (default: the current directory)")
    p.add_argument("--instrument", default=None, metavar="NAME|SPEC.toml", help="camera spec to read the "
                   "frames with: a shipped name (ACS-WFC, WFC3-UVIS, DECam) or your own spec file (default: "
                   "recognised from each header; a camera without spec is read from BUNIT / GAIN)")
    p.add_argument("--ext", type=_ext, default=None, metavar="EXT", help="read only this extension: "
                   "an index (1), a name (SCI, S29) or NAME,VER (SCI,2) (default: the camera's science "
                   "extensions, every SCI extension for a camera without spec, else the primary or first image)")
    p.add_argument("--bunit", default=None, metavar="UNIT", help="unit of the pixels when BUNIT is missing or "
                   "wrong: ELECTRONS, ELECTRONS/S, ADU (COUNTS, DN) or ADU/S (default: the header's BUNIT, "
                   "else the camera spec's; none: electrons, with a warning)")
    p.add_argument("--gain", dest="gain_e_per_adu", type=_positive_float, default=None, metavar="E_PER_ADU",
                   help="gain in e-/ADU for ADU frames (default: the header's gain keyword, e.g. CCDGAIN or "
                   "GAIN, else the camera spec's gain)")
    p.add_argument("--exptime", dest="exptime_s", type=_positive_float, default=None, metavar="SECONDS",
                   help="exposure time of rate frames (ELECTRONS/S, ADU/S) whose header has none (default: "
                   "the header's EXPTIME)")
    p.add_argument("--tile", type=_tile, default=1024, help="tile side in px (default 1024)")
    p.add_argument("--dq-flags", type=_dq_flags, default=None,
                   help="DQ bits treated as bad (default: the camera spec's, ACS/WFC's "
                   "cosmiq_pyro.io.fitsio.DEFAULT_DQ_FLAGS for a camera without spec; 0: none)")
    p.add_argument("--maps", default=None, metavar="NAMES", help="map extensions to write, comma-separated, "
                   "from PROB, ENTROPY, EPISTEMIC, NOVELTY (MASK is always written; default: all)")
    p.add_argument("--overwrite", action="store_true", help="make every product again, also one made with "
                   "other settings (default: an input whose product exists from the same input with the same "
                   "settings is skipped; one whose input changed, or that is damaged, is redone)")
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda (default: cuda when available)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="run on a local Dask cluster of N worker processes, one torch thread each "
                       "(default: serially in this process)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on an existing Dask cluster (e.g. tcp://host:8786)")
    p.set_defaults(run=run_predict)

    p = sub.add_parser("evaluate", help="metrics of one model on labelled frames",
                       description="Detection (TPR at 0.05%/0.5% FPR, ROC AUC), calibration (Brier, "
                       "NLL, ECE) and uncertainty-quality (AURC, error AUROC) metrics per field and filter.")
    p.add_argument("data", metavar="DATA", help="directory of pair .npy files, or simulate:N")
    p.add_argument("--model", required=True, metavar="MODEL.pth", help="checkpoint or ACS-WFC")
    _evaluation_options(p)
    p.add_argument("--out", type=Path, default=None, metavar="TABLE.csv", help="also write the table as CSV")
    p.set_defaults(run=run_evaluate)

    p = sub.add_parser("compare", help="compare models, deepCR and LACosmic on the same frames",
                       description="Run every predictor on the same frames; write table.csv, table.md "
                       "and ROC, reliability, risk-coverage and error-vs-entropy figures to --out.")
    p.add_argument("data", metavar="DATA", help="directory of pair .npy files, or simulate:N")
    p.add_argument("--models", type=_paths, default=(), metavar="A.pth,B.pth", help="checkpoints to compare")
    p.add_argument("--deepcr", action="store_true", help="add deepCR's pretrained ACS-WFC model")
    p.add_argument("--lacosmic", action="store_true", help="add LACosmic (astroscrappy, sigclip sweep)")
    p.add_argument("--read-noise", type=_positive_float, default=None, metavar="E",
                   help="read noise in electrons for LACosmic (default: from simulate:N frames or the "
                   "meta.csv that cosmiq simulate writes)")
    p.add_argument("--out", type=Path, required=True, metavar="OUTDIR", help="directory for tables and figures")
    p.add_argument("--overwrite", action="store_true", help="write into an existing non-empty OUTDIR")
    _evaluation_options(p)
    p.set_defaults(run=run_compare)

    p = sub.add_parser("demo", help="simulate, train both models, compare, report (3.7 min measured on an "
                       "idle 2-core machine)",
                       description="The whole pipeline on simulated ACS/WFC-like frames: train the "
                       "deterministic twin and the VI model, compare them with the shipped ACS-WFC-VI, "
                       "deepCR and LACosmic on held-out frames, and write report.md, figures, FITS maps "
                       "and both checkpoints.")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory (default demo_out); "
                   "files of an earlier demo there are replaced")
    p.add_argument("--quick", action="store_true", help="a tiny configuration, to check the pipeline "
                   "(8.6 s of CPU time measured; about 10 s on an idle 2-core machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_demo)
    return parser


def _method_option(p) -> None:
    p.add_argument("--method", default=None, metavar="METHOD", help="predictive method of a Bayesian model: "
                   "mc (Monte Carlo over -T posterior draws) or moments (sampling-free, "
                   "no -T); default: cosmiq_pyro.inference.methods.DEFAULT_METHOD; recorded as CQMETHOD")


def _evaluation_options(p) -> None:
    _method_option(p)
    p.add_argument("-T", type=_positive_int, default=None, help="posterior draws per pixel of a Monte Carlo "
                   "method (default 16; -T without --method means --method mc)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the posterior draws (default 0)")
    p.add_argument("--size", type=_size, default=256, help="frame side for simulate:N (default 256)")
    p.add_argument("--data-seed", type=_seed, default=HELD_OUT_SEED,
                   help=f"seed of simulate:N frames (default {HELD_OUT_SEED}, held out from training)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# --------------------------------------------------------------------------- option types


def _typed(convert, what):
    def parse(text):
        try:
            value = convert(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


def _check(predicate, convert, what):
    def convert_checked(text):
        value = convert(text)
        if not predicate(value):
            raise ValueError(text)
        return value
    return _typed(convert_checked, what)


_positive_int = _check(lambda v: v >= 1, int, "a positive integer")
_nonnegative_int = _check(lambda v: v >= 0, int, "an integer >= 0")
_positive_float = _check(lambda v: v > 0 and v != float("inf"), float, "a positive number")
_probability = _check(lambda v: 0 <= v <= 1, float, "a probability in [0, 1]")
_size = _check(lambda v: v >= 16 and v % 4 == 0, int, "a frame side >= 16, a multiple of 4")
_tile = _check(lambda v: v >= 4 and v % 4 == 0, int, "a positive multiple of 4")
_seed = _check(lambda v: 0 <= v <= MAX_SEED, int, "an integer seed in [0, 2**63 - 1]")
_dq_flags = _check(lambda v: 0 <= v <= MAX_INT64, int, "a DQ bit mask in [0, 2**63 - 1]")


def _parse_ext(text):
    name, _, ver = text.partition(",")
    if not name.strip():
        raise ValueError(text)
    if ver:
        return (name.strip(), int(ver))
    return int(name) if name.strip().isdigit() else name.strip()


_ext = _typed(_parse_ext, "an extension index, NAME or NAME,VER")


def _device(text):
    """``--device``: cpu, cuda, cuda:N (or deepCR's GPU), checked against this machine now."""
    import torch

    spelled = text.strip().lower()
    spelled = "cuda" if spelled == "gpu" else spelled
    if spelled == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", spelled)
    if not match:
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r} asked for, but CUDA is not available here (torch "
                                         f"{torch.__version__}, {torch.cuda.device_count()} GPUs); use --device cpu")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r} asked for, but this machine has "
                                         f"{torch.cuda.device_count()} CUDA device(s)")
    return spelled


def _split_names(text):
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError(text)
    return names


def _float_range(text):
    values = tuple(float(v) for v in _split_names(text))
    if len(values) == 1:
        return values[0]
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise ValueError(text)
    return values


def _parse_multiplier(text):
    if text.strip().lower() == "training":
        return "training"
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(text)
    return value


def _parse_recipe_item(text):
    """``KEY=VALUE`` -> ``(key, value)``: VALUE as JSON (``30``, ``0.3``, ``[90, 30]``, ``null``),
    else the word as written (``drizcr``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(text)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


_names = _typed(_split_names, "a comma-separated list")
_recipe_item = _typed(_parse_recipe_item, "KEY=VALUE")
_multiplier = _typed(_parse_multiplier, "a positive number or 'training'")
_paths = _typed(lambda text: tuple(Path(p) for p in _split_names(text)), "comma-separated paths")
_range = _typed(_float_range, "MIN,MAX seconds (0 < MIN <= MAX) or one number")
