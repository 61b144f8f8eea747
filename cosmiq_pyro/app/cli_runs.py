"""The ``cosmiq`` subcommands: each turns its parsed options into one call of the package.

`cosmiq_pyro.app.cli` is the entry point (errors, warnings, signals), `cosmiq_pyro.app.cli_parser`
the options.  Every ``run_<command>(args)`` returns the exit status; a user error found here is
a `CommandError` (one line, exit status 2).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ..io.atomic import check_writable_directory, staged_directory, write_bytes_atomic

__all__ = ["CommandError", "USER_ERRORS", "EXIT_USAGE", "EXIT_SOME_FAILED", "EXIT_INTERRUPTED", "error_line",
           "run_simulate", "run_train", "run_adapt", "run_predict", "run_evaluate", "run_compare", "run_demo"]

USER_ERRORS = (ValueError, TypeError, OSError)  # FileNotFoundError, FileExistsError are OSErrors
EXIT_USAGE = 2
EXIT_SOME_FAILED = 1  # cosmiq predict: some inputs failed, the others were done
EXIT_INTERRUPTED = 130
_PAIR_NAME = re.compile(r"^\d+_(?P<field>[A-Za-z]+)_(?P<filter>[A-Za-z0-9]+)\.npy$")


class CommandError(Exception):
    """A user error found by the command line itself (bad option value, clashing output)."""


def error_line(text: str) -> None:
    print(" ".join(text.split()), file=sys.stderr)


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


def run_simulate(args) -> int:
    from .previews import simulated_hdulist
    from ..io.fitswrite import write_hdulist_atomic
    from ..data.simulate import make_dataset, resolve_instrument, write_pairs

    instrument = resolve_instrument(args.instrument)  # a bad spec fails before OUTDIR is made
    multiplier, min_cr_pixels = args.cr_rate_multiplier, 0
    if multiplier == "training":
        multiplier = instrument.simulation.cr_rate_multiplier
        min_cr_pixels = instrument.simulation.min_cr_pixels
    with staged_directory(args.outdir, overwrite=args.overwrite) as staging:
        dataset = make_dataset(args.n, size=args.size, fields=args.fields, filters=args.filters,
                               exptime_s=args.exptime, seed=args.seed, label_rule=args.labels,
                               instrument=instrument, cr_rate_multiplier=multiplier,
                               min_cr_pixels=min_cr_pixels)
        paths = write_pairs(staging, dataset)
        previews = []
        for i in range(min(args.previews, len(dataset))):
            name = Path(paths[i]).with_suffix(".fits").name
            hdul = simulated_hdulist(dataset.image[i], dataset.mask[i], dataset.ignore[i],
                                     dataset.meta.iloc[i].to_dict(), instrument=instrument)
            previews.append(write_hdulist_atomic(hdul, staging / name).name)
        meta = dataset.meta.copy()
        meta.insert(0, "file", [Path(p).name for p in paths])  # row <-> file, whatever the numbering
        meta.to_csv(staging / "meta.csv", index=False)
    print(f"wrote {len(paths)} {instrument.name} pair files, sky.npy, meta.csv and {len(previews)} FITS "
          f"previews to {args.outdir}")
    return 0


def run_train(args) -> int:
    from ..deepcr.training import train

    out = Path(args.out)
    if out.suffix != ".pth":
        raise CommandError(f"cosmiq train: --out must name a .pth file, got {str(out)!r}")
    if out.exists() and not (args.resume or args.overwrite):
        raise FileExistsError(f"{str(out)!r} exists; pass --resume to continue it or --overwrite to replace it")
    if args.init_from is not None and not args.bayesian:
        raise CommandError("cosmiq train: --init-from needs --bayesian")
    if not args.bayesian and (args.prior != "iid" or args.prior_scale is not None):
        raise CommandError("cosmiq train: --prior and --prior-scale need --bayesian")
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
                    bayesian=args.bayesian, kl_beta=args.kl_beta, prior=args.prior, prior_scale=args.prior_scale,
                    norm_layer=args.norm,
                    init_from=args.init_from, init_scale=args.init_scale, seed=args.seed, resume=args.resume,
                    overwrite=args.overwrite, device=args.device)
    result = trainer.train()
    if result.interrupted:
        where = f"best epoch so far kept in {out}" if out.exists() else f"no epoch completed; {out} not written"
        print(f"cosmiq train: interrupted; {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {out}")
    return 0


def run_adapt(args) -> int:
    from ..inference.adaptation import adapt

    recipe = None
    if args.recipe:
        keys = [key for key, _ in args.recipe]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise CommandError(f"cosmiq adapt: error: --recipe gives {', '.join(twice)} more than once")
        own = {"n_train": "--n-frames", "size": "--size", "epochs": "--epochs"}  # keys with their own option
        for key in keys:
            if key in own:
                raise CommandError(f"cosmiq adapt: error: --recipe {key}: use {own[key]}")
        recipe = dict(args.recipe)
    result = adapt(args.instrument, args.start, args.out, images=args.images, darks=args.darks,
                   n_frames=args.n_frames, size=args.size, epochs=args.epochs, chunk_epochs=args.chunk_epochs,
                   recipe=recipe, work=args.work, overwrite=args.overwrite, device=args.device,
                   progress=not args.quiet)
    if result.interrupted:
        print(f"cosmiq adapt: interrupted; the best epoch so far is kept in the work directory "
              f"(run the same command to continue); {args.out} not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(result.summary())
    return 0


def run_predict(args) -> int:
    from contextlib import nullcontext

    from .batch import predict_many, summary
    from .products import novel_extensions

    options = dict(threshold=args.threshold, seed=args.seed, tile=args.tile, device=args.device, ext=args.ext,
                   dq_flags=args.dq_flags, bunit=args.bunit, gain_e_per_adu=args.gain_e_per_adu,
                   instrument=args.instrument, exptime_s=args.exptime_s, maps=args.maps)
    if args.T is not None:
        options["T"] = args.T
    if args.method is not None:
        options["method"] = args.method
    with _dask_client(args) if args.workers or args.scheduler else nullcontext() as client:
        table = predict_many(args.inputs, model=args.model, outdir=args.outdir, client=client,
                             overwrite=args.overwrite, **options)
    for row in table.itertuples():
        if row.status == "failed":
            error_line(f"cosmiq predict: error: {row.error}")
        else:
            line = ({"done": f"wrote {row.output}", "skipped": f"skipped (same input and provenance) {row.output}",
                     "redone": f"redid {row.output}: {row.note}"}[row.status] if not row.note or row.status != "done"
                    else f"found {row.output}, {row.note}")
            print(f"{line} [model {row.model}: {row.model_reason}]")
            novel = novel_extensions(row.output)
            if novel:
                scores = ", ".join(f"{ext} {novelty:.2f}" for ext, novelty in novel)
                error_line(f"cosmiq predict: warning: {row.input} is unlike the model's training frames "
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


def run_evaluate(args) -> int:
    from ..evaluation.study import evaluate

    if args.out is not None:
        if args.out.exists():
            raise FileExistsError(f"{str(args.out)!r} exists; remove it or choose another --out")
        if not args.out.parent.is_dir():
            raise FileNotFoundError(f"directory of --out {str(args.out.parent)!r} does not exist")
        check_writable_directory(args.out.parent, "directory of --out")
    model, _ = _load_model(args.model)
    dataset = _dataset(args.data, size=args.size, seed=args.data_seed)
    table = evaluate(model, dataset, method=args.method, T=args.T, seed=args.seed, progress=not args.quiet)
    print(table.to_string(index=False))
    if args.out is not None:
        write_bytes_atomic(args.out, table.to_csv(index=False).encode())
        print(f"wrote {args.out}")
    return 0


def run_compare(args) -> int:
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
        result = compare(predictors, dataset, out_dir=staging, method=args.method, T=args.T, seed=args.seed,
                         progress=not args.quiet)
    print(result.markdown)
    print(f"wrote {', '.join(sorted(p.name for p in result.files.values()))} to {args.out}")
    return 0


def run_demo(args) -> int:
    from .demo import DemoConfig, run_demo

    _one_torch_thread()
    config = DemoConfig.quick() if args.quick else DemoConfig()
    result = run_demo(args.out, config, progress=not args.quiet)
    print(result.summary())
    return 0
