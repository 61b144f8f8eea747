"""The ``cosmiq`` command: simulate, train, predict, evaluate, compare, demo.

Each subcommand translates its options into one call of the package
(`simulate.make_dataset` + `simulate.write_pairs`, `training.train`, `products.predict_fits`,
`study.evaluate`, `study.compare`, `demo.run_demo`) and turns the errors those raise for bad
input (ValueError, TypeError, OSError and its FileNotFoundError / FileExistsError) into one line
on stderr and exit status 2.  Ctrl-C exits with status 130; during ``train`` the checkpoint
then holds the best epoch completed.  Whatever a subcommand writes appears complete or not at
all: files are written to temporary names and renamed, directories are filled in a staging
directory and moved into place at the end.

DATA arguments (train, evaluate, compare) are either a directory of deepCR 'pair' files
(``*.npy`` of shape (2 or 3, W, W), as ``cosmiq simulate`` or deepCR's tutorials write them;
the ``meta.csv`` that ``cosmiq simulate`` writes beside them gives each frame's field, filter
and detector settings) or ``simulate:N``: N frames simulated on the fly.  ``train`` simulates with seed 0 by default;
``evaluate`` and ``compare`` with `cosmiq_pyro.data.seeds.HELD_OUT_SEED`, so their frames never
overlap a training set (see that module).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import warnings
from pathlib import Path

from .._version import __version__
from ..data.seeds import HELD_OUT_SEED
from ..io.atomic import check_writable_directory, staged_directory, write_bytes_atomic
from ..utils.checks import MAX_SEED

__all__ = ["main", "build_parser", "HELD_OUT_SEED"]

USER_ERRORS = (ValueError, TypeError, OSError)  # FileNotFoundError, FileExistsError are OSErrors
EXIT_USAGE = 2
EXIT_SOME_FAILED = 1  # cosmiq predict: some inputs failed, the others were done
EXIT_INTERRUPTED = 130
_PAIR_NAME = re.compile(r"^\d+_(?P<field>[A-Za-z]+)_(?P<filter>F\d+[A-Z]+)\.npy$")


class CommandError(Exception):
    """A user error found by the command line itself (bad option value, clashing output)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message):
        raise CommandError(f"{self.prog}: {message} (see {self.prog} --help)")


# --------------------------------------------------------------------------- entry point


def main(argv=None) -> int:
    """Run ``cosmiq`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    command = "cosmiq"
    with warnings.catch_warnings(), _sigterm_as_interrupt():
        warnings.showwarning = _one_line_warnings()
        try:
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help(sys.stderr)
                return EXIT_USAGE
            command = f"cosmiq {args.command}"
            return int(args.run(args) or 0)
        except SystemExit as stop:  # --help, --version
            return stop.code if isinstance(stop.code, int) else 0
        except KeyboardInterrupt:
            print("cosmiq: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except CommandError as err:
            _error_line(str(err))
            return EXIT_USAGE
        except (*USER_ERRORS, ModuleNotFoundError, FloatingPointError) as err:  # FPE: a diverging fit
            _error_line(f"{command}: error: {_describe(err)}")
            return EXIT_USAGE


def _describe(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    return text or type(err).__name__


def _error_line(text: str) -> None:
    print(" ".join(text.split()), file=sys.stderr)


def _one_line_warnings():
    """A ``warnings.showwarning`` that prints each distinct message once, on one line."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            print(f"cosmiq: warning: {text}", file=sys.stderr)
    return show


class _sigterm_as_interrupt:
    """SIGTERM raises KeyboardInterrupt inside the block (as Ctrl-C does): ``train`` keeps its
    best epoch, staged outputs and temporaries are removed.  The previous handler is restored on
    exit; outside the main thread (where handlers cannot be set) nothing changes."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._interrupt)
        return self

    @staticmethod
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``cosmiq`` and its six subcommands."""
    parser = _Parser(prog="cosmiq", description="Cosmic-ray detection with calibrated uncertainty "
                     "for HST ACS/WFC-style CCD images (cosmiq_pyro).")
    parser.add_argument("--version", action="version", version=f"cosmiq_pyro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("simulate", help="simulate HST-like frames with CR truth (deepCR 'pair' files)",
                       description="Simulate ACS/WFC-like frames with cosmic rays and write them in "
                       "deepCR's 'pair' layout (NNNNNN_<field>_<filter>.npy = [image, CR mask, ignore], "
                       "sky.npy), meta.csv (one row per frame, the pair file's name in column 'file'; frames "
                       "are numbered from 000001) and a few FITS previews (SCI, CRMASK, IGNORE) that "
                       "'cosmiq predict' reads.")
    p.add_argument("outdir", metavar="OUTDIR", help="new (or empty) directory to create")
    p.add_argument("--n", type=_positive_int, default=512, help="number of frames (default 512)")
    p.add_argument("--size", type=_size, default=256, help="frame side in pixels (default 256)")
    p.add_argument("--fields", type=_names, default=("EX", "GC", "GAL"), help="comma-separated field "
                   "types among EX,GC,GAL (default all three)")
    p.add_argument("--filters", type=_names, default=("F435W", "F606W", "F814W"),
                   help="comma-separated ACS filters (default F435W,F606W,F814W)")
    p.add_argument("--exptime", type=_range, default=(100.0, 1200.0), metavar="MIN,MAX",
                   help="exposure time range in s, log-uniform (default 100,1200; one number fixes it)")
    p.add_argument("--seed", type=_seed, default=0, help="dataset seed (default 0)")
    p.add_argument("--labels", choices=("drizcr", "sigma"), default="drizcr",
                   help="CR truth rule: drizcr = AstroDrizzle's driz_cr with its defaults, as real "
                   "ACS/WFC masks (default); sigma = CR charge above 1 sigma of the pixel's noise")
    p.add_argument("--previews", type=_nonnegative_int, default=3, help="FITS previews of the first "
                   "frames (default 3)")
    p.add_argument("--overwrite", action="store_true", help="write into an existing non-empty OUTDIR")
    p.set_defaults(run=_run_simulate)

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
    p.add_argument("--kl-beta", type=_positive_float, default=1e-6, help="KL weight, --bayesian (default 1e-6)")
    p.add_argument("--prior-scale", type=_positive_float, default=1.0, help="prior sd, --bayesian (default 1)")
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
    p.set_defaults(run=_run_train)

    p = sub.add_parser("predict", help="CR probability, entropy, epistemic and mask maps of FITS files",
                       description="For each input FITS file write OUTDIR/<name>_cosmiq.fits with, per SCI "
                       "extension, PROB, ENTROPY, EPISTEMIC (float32) and MASK (uint8) extensions carrying "
                       "the input's WCS, identifying keywords and provenance (model SHA-256, T, threshold, "
                       "seed). Pixels are read in electrons (BUNIT converted); DQ-flagged pixels are ignored. "
                       "An input whose product exists with the same provenance is skipped; a bad input gets "
                       "one error line and the others go on. Exit status: 0 when no input failed, 1 when "
                       "some did, 2 for usage errors.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FITS files (HST _flc/_flt or any image), "
                   "directories (their FITS files; only the _flc/_flt exposures where there are some), glob "
                   "patterns, or @LIST.txt (one input per line)")
    p.add_argument("--model", default="ACS-WFC-VI", metavar="MODEL", help="cosmiq_pyro checkpoint, or a "
                   "published model: ACS-WFC-VI (default; the Bayesian model shipped with the package) or "
                   "ACS-WFC (deepCR's published weights; needs the deepCR package)")
    p.add_argument("-T", type=_positive_int, default=None, help="posterior draws per pixel of a Bayesian "
                   "model (default 16); a deterministic model makes one pass and says that -T was not used")
    p.add_argument("--threshold", type=_probability, default=0.5, help="MASK = PROB > threshold (default 0.5)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the posterior draws (default 0)")
    p.add_argument("-o", "--outdir", type=Path, default=Path("."), metavar="OUTDIR",
                   help="output directory (default: the current directory)")
    p.add_argument("--ext", type=_ext, default=None, metavar="EXT", help="read only this extension: "
                   "an index (1), a name (SCI) or NAME,VER (SCI,2) (default: every SCI extension, else the "
                   "primary or first image)")
    p.add_argument("--bunit", default=None, metavar="UNIT", help="unit of the pixels when BUNIT is missing or "
                   "wrong: ELECTRONS, ELECTRONS/S, ADU (COUNTS, DN) or ADU/S (default: the header's BUNIT; "
                   "none: electrons, with a warning)")
    p.add_argument("--gain", dest="gain_e_per_adu", type=_positive_float, default=None, metavar="E_PER_ADU",
                   help="gain in e-/ADU for ADU frames (default: the GAIN, CCDGAIN or ATODGAIN keyword)")
    p.add_argument("--tile", type=_tile, default=1024, help="tile side in px (default 1024)")
    p.add_argument("--dq-flags", type=_nonnegative_int, default=None,
                   help="DQ bits treated as bad (default: cosmiq_pyro.io.fitsio.DEFAULT_DQ_FLAGS; 0: none)")
    p.add_argument("--overwrite", action="store_true", help="make every product again (default: an input "
                   "whose product exists with the same version, model, T, seed and threshold is skipped)")
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda (default: cuda when available)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="run on a local Dask cluster of N worker processes, one torch thread each "
                       "(default: serially in this process)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on an existing Dask cluster (e.g. tcp://host:8786)")
    p.set_defaults(run=_run_predict)

    p = sub.add_parser("evaluate", help="metrics of one model on labelled frames",
                       description="Detection (TPR at 0.05%/0.5% FPR, ROC AUC), calibration (Brier, "
                       "NLL, ECE) and uncertainty-quality (AURC, error AUROC) metrics per field and filter.")
    p.add_argument("data", metavar="DATA", help="directory of pair .npy files, or simulate:N")
    p.add_argument("--model", required=True, metavar="MODEL.pth", help="checkpoint or ACS-WFC")
    _evaluation_options(p)
    p.add_argument("--out", type=Path, default=None, metavar="TABLE.csv", help="also write the table as CSV")
    p.set_defaults(run=_run_evaluate)

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
    p.set_defaults(run=_run_compare)

    p = sub.add_parser("demo", help="simulate, train both models, compare, report (6.3 min measured on an "
                       "idle 2-core machine)",
                       description="The whole pipeline on simulated ACS/WFC-like frames: train the "
                       "deterministic twin and the VI model, compare them with deepCR and LACosmic on "
                       "held-out frames, and write report.md, figures, FITS maps and both checkpoints.")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory (default demo_out); "
                   "files of an earlier demo there are replaced")
    p.add_argument("--quick", action="store_true", help="a tiny configuration, to check the pipeline "
                   "(8.6 s of CPU time measured; about 10 s on an idle 2-core machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_demo)
    return parser


def _evaluation_options(p) -> None:
    p.add_argument("-T", type=_positive_int, default=16, help="posterior draws per pixel (default 16)")
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


_names = _typed(_split_names, "a comma-separated list")
_paths = _typed(lambda text: tuple(Path(p) for p in _split_names(text)), "comma-separated paths")
_range = _typed(_float_range, "MIN,MAX seconds (0 < MIN <= MAX) or one number")


# --------------------------------------------------------------------------- data and outputs


def _dataset(spec: str, *, size: int, seed: int):
    """DATA as a Dataset: ``simulate:N`` or a directory of pair files (with field/filter meta)."""
    from ..data.datasets import PairDataset, SimulatedDataset

    if spec.startswith("simulate:"):
        count = spec.partition(":")[2]
        if not count.isdigit() or int(count) < 2:
            raise CommandError(f"DATA {spec!r}: expected simulate:N with N >= 2 frames")
        return SimulatedDataset(int(count), size=size, seed=seed)
    paths = _pair_files(spec)
    return PairDataset([str(p) for p in paths], meta=_pair_meta(paths))


def _pair_files(spec: str) -> list:
    folder = Path(spec)
    if not folder.exists():
        raise FileNotFoundError(f"DATA {spec!r} does not exist (expected a directory of pair .npy files "
                                "or simulate:N)")
    if not folder.is_dir():
        raise CommandError(f"DATA {spec!r} is not a directory (expected a directory of pair .npy files "
                           "or simulate:N)")
    paths = sorted(p for p in folder.glob("*.npy") if p.name != "sky.npy")
    if not paths:
        raise CommandError(f"DATA {spec!r} holds no .npy pair files")
    return paths


def _pair_meta(paths):
    """Per-file metadata of pair files, or None.

    ``meta.csv`` beside the files (written by ``cosmiq simulate``: the pair file's name in column
    ``file``, then field, filter, read noise, full well... per frame) when present; a meta.csv
    without ``file`` (older versions) matches frame ``NNNNNN_*.npy`` to row ``index == NNNNNN - 1``;
    else field and filter parsed from ``cosmiq simulate`` file names; else None.
    """
    import pandas as pd

    matches = [_PAIR_NAME.match(p.name) for p in paths]
    if not all(matches):
        return None
    table = paths[0].parent / "meta.csv"
    if table.is_file():
        meta = pd.read_csv(table)
        if "file" in meta.columns:
            rows = meta.set_index("file")
            missing = [p.name for p in paths if p.name not in rows.index]
            if missing:
                raise CommandError(f"{str(table)!r} has no row for {', '.join(missing[:3])}")
            return rows.loc[[p.name for p in paths]].reset_index()
        if "index" not in meta.columns:
            raise CommandError(f"{str(table)!r} has no 'index' column (expected the meta.csv of cosmiq simulate)")
        rows = meta.set_index("index")
        wanted = [int(p.name.split("_")[0]) - 1 for p in paths]
        missing = sorted(set(wanted) - set(rows.index))
        if missing:
            raise CommandError(f"{str(table)!r} has no row for frame(s) {[k + 1 for k in missing[:3]]}")
        return rows.loc[wanted].reset_index()
    return pd.DataFrame([{"field": m["field"], "filter": m["filter"]} for m in matches])


def _load_model(spec: str, device=None):
    """(FitResult, weights file) for a checkpoint path or a published model name."""
    from ..models.registry import load_model

    result = load_model(spec, device=device)
    return result, result.weights_file


def _one_torch_thread() -> None:
    """This CLI process runs torch with one intra-op thread: LACosmic's OpenMP loops and a busy
    machine's other processes do not wait on torch's idle workers (see `peers.LACosmicPeer`)."""
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- subcommands


def _run_simulate(args) -> int:
    from .products import simulated_hdulist
    from ..io.fitsio import write_hdulist_atomic
    from ..data.simulate import make_dataset, write_pairs

    with staged_directory(args.outdir, overwrite=args.overwrite) as staging:
        dataset = make_dataset(args.n, size=args.size, fields=args.fields, filters=args.filters,
                               exptime_s=args.exptime, seed=args.seed, label_rule=args.labels)
        paths = write_pairs(staging, dataset)
        previews = []
        for i in range(min(args.previews, len(dataset))):
            name = Path(paths[i]).with_suffix(".fits").name
            hdul = simulated_hdulist(dataset.image[i], dataset.mask[i], dataset.ignore[i],
                                     dataset.meta.iloc[i].to_dict())
            previews.append(write_hdulist_atomic(hdul, staging / name).name)
        meta = dataset.meta.copy()
        meta.insert(0, "file", [Path(p).name for p in paths])  # row <-> file, whatever the numbering
        meta.to_csv(staging / "meta.csv", index=False)
    print(f"wrote {len(paths)} pair files, sky.npy, meta.csv and {len(previews)} FITS previews to {args.outdir}")
    return 0


def _run_train(args) -> int:
    from ..deepcr.training import train

    out = Path(args.out)
    if out.suffix != ".pth":
        raise CommandError(f"cosmiq train: --out must name a .pth file, got {str(out)!r}")
    if out.exists() and not (args.resume or args.overwrite):
        raise FileExistsError(f"{str(out)!r} exists; pass --resume to continue it or --overwrite to replace it")
    if args.init_from is not None and not args.bayesian:
        raise CommandError("cosmiq train: --init-from needs --bayesian")
    check_writable_directory(out.parent, "directory of --out")
    data = {"mode": "pair"}
    if args.darks is not None:
        if args.data.startswith("simulate:"):
            raise CommandError("cosmiq train: --darks adds dark-frame cosmic rays to CR-free images; DATA must be "
                               "their directory, not simulate:N")
        if not args.darks.is_dir():
            raise FileNotFoundError(f"--darks {str(args.darks)!r} is not a directory of dark-frame .npy files")
        darks = sorted(str(p) for p in args.darks.glob("*.npy"))
        if len(darks) < 2:
            raise CommandError(f"cosmiq train: --darks {str(args.darks)!r} holds {len(darks)} .npy file(s); "
                               "training needs at least 2 (one or more is held out for validation)")
        data = {"mode": "simulate", "mask": darks}
    if args.data.startswith("simulate:"):
        image = _dataset(args.data, size=args.size, seed=args.seed)
    else:
        image = [str(p) for p in _pair_files(args.data)]
        if len(image) < 2:
            raise CommandError(f"cosmiq train: DATA {args.data!r} holds {len(image)} pair file; training needs "
                               "at least 2 (one frame or more is held out for validation)")
    trainer = train(image=image, **data, name=out.stem, directory=str(out.parent) or ".",
                    hidden=args.hidden, epoch=args.epochs, epoch_phase0=args.epoch_phase0,
                    batch_size=args.batch_size, lr=args.lr, verbose=not args.quiet, use_tqdm=not args.quiet,
                    bayesian=args.bayesian, kl_beta=args.kl_beta, prior_scale=args.prior_scale, norm_layer=args.norm,
                    init_from=args.init_from, init_scale=args.init_scale, seed=args.seed, resume=args.resume,
                    overwrite=args.overwrite, device=args.device)
    result = trainer.train()
    if result.interrupted:
        where = f"best epoch so far kept in {out}" if out.exists() else f"no epoch completed; {out} not written"
        print(f"cosmiq train: interrupted; {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {out}")
    return 0


def _run_predict(args) -> int:
    from contextlib import nullcontext

    from ..io.fitsio import DEFAULT_DQ_FLAGS
    from .batch import predict_many, summary
    from .products import novel_extensions

    options = dict(threshold=args.threshold, seed=args.seed, tile=args.tile, device=args.device, ext=args.ext,
                   dq_flags=DEFAULT_DQ_FLAGS if args.dq_flags is None else args.dq_flags, bunit=args.bunit,
                   gain_e_per_adu=args.gain_e_per_adu)
    if args.T is not None:
        options["T"] = args.T
    with _dask_client(args) if args.workers or args.scheduler else nullcontext() as client:
        table = predict_many(args.inputs, model=args.model, outdir=args.outdir, client=client,
                             overwrite=args.overwrite, **options)
    for row in table.itertuples():
        if row.status == "failed":
            _error_line(f"cosmiq predict: error: {row.error}")
        else:
            print(f"{'wrote' if row.status == 'done' else 'skipped (same provenance)'} {row.output}")
            novel = novel_extensions(row.output)
            if novel:
                scores = ", ".join(f"{ext} {novelty:.2f}" for ext, novelty in novel)
                _error_line(f"cosmiq predict: warning: {row.input} is unlike the model's training frames "
                            f"(novelty {scores}; 1 = 95th percentile of in-distribution frames): "
                            "its cosmic-ray mask may be wrong")
    print(f"cosmiq predict: {summary(table)}")
    return EXIT_SOME_FAILED if (table["status"] == "failed").any() else 0


def _dask_client(args):
    """A Dask client: a new local cluster of ``--workers`` processes, or the ``--scheduler``'s."""
    if args.workers:
        from .workers import local_client

        return local_client(args.workers)
    from distributed import Client

    return Client(args.scheduler, timeout="30s")


def _run_evaluate(args) -> int:
    from ..evaluation.study import evaluate

    if args.out is not None:
        if args.out.exists():
            raise FileExistsError(f"{str(args.out)!r} exists; remove it or choose another --out")
        if not args.out.parent.is_dir():
            raise FileNotFoundError(f"directory of --out {str(args.out.parent)!r} does not exist")
        check_writable_directory(args.out.parent, "directory of --out")
    model, _ = _load_model(args.model)
    dataset = _dataset(args.data, size=args.size, seed=args.data_seed)
    table = evaluate(model, dataset, T=args.T, seed=args.seed, progress=not args.quiet)
    print(table.to_string(index=False))
    if args.out is not None:
        write_bytes_atomic(args.out, table.to_csv(index=False).encode())
        print(f"wrote {args.out}")
    return 0


def _run_compare(args) -> int:
    from ..evaluation.peers import DeepCRPeer, LACosmicPeer
    from ..evaluation.study import compare

    _one_torch_thread()
    predictors = {}
    for path in args.models:
        name = Path(path).stem
        if name in predictors:
            raise CommandError(f"cosmiq compare: two models are named {name!r}; rename one file")
        predictors[name] = _load_model(str(path))[0]
    if args.deepcr:
        predictors["deepCR ACS-WFC"] = DeepCRPeer("ACS-WFC")
    dataset = _dataset(args.data, size=args.size, seed=args.data_seed)
    if args.lacosmic:
        meta = getattr(dataset, "meta", None)
        has_read_noise = args.data.startswith("simulate:") or (meta is not None and "read_noise_e" in meta)
        if args.read_noise is None and not has_read_noise:
            raise CommandError("cosmiq compare: --lacosmic needs the frames' read noise: give --read-noise "
                               "(simulate:N frames and cosmiq simulate's meta.csv carry their own)")
        predictors["LACosmic"] = LACosmicPeer(readnoise_e=args.read_noise)
    if not predictors:
        raise CommandError("cosmiq compare: nothing to compare; give --models, --deepcr or --lacosmic")
    with staged_directory(args.out, overwrite=args.overwrite) as staging:
        result = compare(predictors, dataset, out_dir=staging, T=args.T, seed=args.seed, progress=not args.quiet)
    print(result.markdown)
    print(f"wrote {', '.join(sorted(p.name for p in result.files.values()))} to {args.out}")
    return 0


def _run_demo(args) -> int:
    from .demo import DemoConfig, run_demo

    _one_torch_thread()
    config = DemoConfig.quick() if args.quick else DemoConfig()
    result = run_demo(args.out, config, progress=not args.quiet)
    print(result.summary())
    return 0
