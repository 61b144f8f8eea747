"""``cosmiq demo``: the whole pipeline on simulated frames (3.7 min measured on two idle CPU cores).

1. simulate a small ACS/WFC-like training set (`simulate.make_dataset`);
2. train the deterministic twin with deepCR's two-phase schedule, then the VI model starting
   from it (`training.train`, ``init_from=``);
3. compare both with the shipped Bayesian model ``ACS-WFC-VI`` (package data, trained with
   ``benchmarks/train_published.py``), deepCR's pretrained ACS-WFC model (when the ``deepCR``
   package is installed) and LACosmic on held-out simulated frames (`study.compare`);
4. write FITS maps of one held-out frame with the products writer of ``cosmiq predict``
   (`products.predict_fits`), a figure of them, the training curves and ``report.md``.

Its configuration lives in one frozen dataclass, `DemoConfig`, so the study scripts and the
notebooks can rebuild exactly the same data and models.  Everything is written into a staging
directory and moved into the output directory at the end: an interrupted demo leaves nothing.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..io.atomic import staged_directory
from ..data.datasets import SimulatedDataset
from ..data.seeds import HELD_OUT_SEED
from ..io.fitswrite import write_hdulist_atomic
from ..evaluation.peers import DEFAULT_SIGCLIPS, DeepCRPeer, LACosmicPeer
from ..inference.predictive import predict
from .previews import simulated_hdulist
from .products import predict_fits
from ..data.simulate import make_dataset
from ..evaluation.study import compare
from ..deepcr.training import train
from ..models.registry import load_model

__all__ = ["DemoConfig", "DemoResult", "run_demo", "demo_datasets", "shipped_label"]


@dataclass(frozen=True)
class DemoConfig:
    """Everything that defines the demo's data, models and comparison.

    Attributes
    ----------
    n_train, train_size : int
        Simulated training frames (90 % train / 10 % validation) and their side in px.
    n_test, test_size : int
        Held-out frames of the comparison and their side in px.
    fields, filters, exptime_s
        What the frames are drawn from (`simulate.frame_spec`).
    train_seed, test_seed : int
        Dataset seeds; ``test_seed`` is `cosmiq_pyro.data.seeds.HELD_OUT_SEED`: frames never in a training set.
    hidden, norm : int, str
        Network width and normalisation (both models).
    batch_size : int
    det_epochs, det_epoch_phase0, det_lr
        Deterministic twin: epochs, of which ``det_epoch_phase0`` with batch statistics, and the
        Adam learning rate.
    vi_epochs, vi_epoch_phase0, vi_lr, kl_beta, init_scale, prior_scale, T_val
        VI model, started from the trained twin's weights (posterior means) with standard
        deviations ``init_scale``; phase 0 epochs default to none (the twin's batch-norm
        statistics are kept frozen, and training runs at ``vi_lr / 2.5``).  ``kl_beta=None``
        means ``1 / train_size**2``: the loss is then exactly the negative ELBO per pixel.
    T : int
        Posterior draws per pixel in the comparison and the FITS maps.
    seed : int
        Seed of training (initialisation, shuffling) and of the posterior draws.
    shipped : str or None
        Name of the published Bayesian model compared beside the demo's two (`models.registry`,
        loaded offline from package data); None leaves it out.
    deepcr, lacosmic : bool
        Include deepCR's pretrained model (if installed) and LACosmic in the comparison.
    lacosmic_sigclips : tuple of float
        sigclip values swept for LACosmic's ROC.
    map_frame : int
        Held-out frame shown as FITS maps and figure.

    Thread counts are the caller's: ``cosmiq demo`` runs torch with one intra-op thread (on this
    project's shared 2-core machine a training batch took 0.25 s with one thread and 1.9 s with
    two while other processes competed for the cores).
    """

    n_train: int = 256
    train_size: int = 128
    n_test: int = 24
    test_size: int = 256
    fields: tuple = ("EX", "GC", "GAL")
    filters: tuple = ("F435W", "F606W", "F814W")
    exptime_s: tuple = (100.0, 1200.0)
    train_seed: int = 0
    test_seed: int = HELD_OUT_SEED
    hidden: int = 16
    norm: str = "batch"
    batch_size: int = 4
    det_epochs: int = 16
    det_epoch_phase0: int = 6
    det_lr: float = 2e-2
    vi_epochs: int = 4
    vi_epoch_phase0: int = 0
    vi_lr: float = 5e-3
    kl_beta: float | None = None
    init_scale: float = 1e-2
    prior_scale: float = 1.0
    T_val: int = 4
    T: int = 16
    seed: int = 0
    shipped: str | None = "ACS-WFC-VI"
    deepcr: bool = True
    lacosmic: bool = True
    lacosmic_sigclips: tuple = DEFAULT_SIGCLIPS[::2]
    map_frame: int = 0

    @classmethod
    def quick(cls) -> "DemoConfig":
        """A tiny configuration that runs the whole pipeline in well under a minute (for tests)."""
        return cls(n_train=12, train_size=32, n_test=3, test_size=64, filters=("F606W",), hidden=4,
                   batch_size=4, det_epochs=2, det_epoch_phase0=1, vi_epochs=1, T=2, T_val=2,
                   lacosmic_sigclips=(2.0, 8.0, 32.0))

    @property
    def kl_weight(self) -> float:
        """``kl_beta``, or ``1 / train_size**2`` when it is None."""
        return 1.0 / self.train_size ** 2 if self.kl_beta is None else float(self.kl_beta)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class DemoResult:
    """What `run_demo` made.

    Attributes
    ----------
    out_dir : pathlib.Path
    files : dict of str to pathlib.Path
        ``report``, ``deterministic``, ``vi`` (checkpoints), ``table_csv``, ``table_md``,
        ``fits_input``, ``fits_maps``, ``maps_png``, ``training_png`` and the comparison figures.
    table : pandas.DataFrame
        The comparison table (`study.Comparison.table`).
    timings_s : dict of str to float
        Wall time of each stage and ``total``.
    config : DemoConfig
    """

    out_dir: Path
    files: dict
    table: object
    timings_s: dict
    config: DemoConfig = field(default_factory=DemoConfig)

    def summary(self) -> str:
        """Where everything is, and how long it took."""
        width = max(len(k) for k in self.files)
        lines = [f"cosmiq demo finished in {self.timings_s['total'] / 60:.1f} min; outputs in {self.out_dir}/:"]
        lines += [f"  {key:<{width}}  {path}" for key, path in self.files.items()]
        lines.append(f"Open {self.files['report']} for the comparison table and figures.")
        return "\n".join(lines)


def demo_datasets(config: DemoConfig = DemoConfig()):
    """The demo's training set (a `simulate.SimulatedSet`) and held-out set (`data.SimulatedDataset`)."""
    train_set = make_dataset(config.n_train, size=config.train_size, fields=config.fields,
                             filters=config.filters, exptime_s=config.exptime_s, seed=config.train_seed)
    test_set = SimulatedDataset(config.n_test, size=config.test_size, fields=config.fields,
                                filters=config.filters, exptime_s=config.exptime_s, seed=config.test_seed)
    shared = set(train_set.meta["seed"]) & set(test_set.meta["seed"])
    if shared:  # frame seeds are 32-bit hashes of (dataset seed, index): check, do not assume
        raise ValueError(f"held-out frames share simulator seeds {sorted(shared)[:3]} with the training set; "
                         "choose another test_seed")
    return train_set, test_set


def run_demo(out_dir="demo_out", config: DemoConfig = DemoConfig(), *, progress: bool = True) -> DemoResult:
    """Run the demo (see the module docstring) and write its outputs to ``out_dir``.

    Files of an earlier demo in ``out_dir`` are replaced; other files there are left alone.

    Returns
    -------
    DemoResult
    """
    if not isinstance(config, DemoConfig):
        raise TypeError(f"config must be a DemoConfig, got {type(config).__name__}")
    if not 0 <= config.map_frame < config.n_test:
        raise ValueError(f"map_frame must index a held-out frame (0..{config.n_test - 1}), got {config.map_frame}")
    return _run(Path(out_dir), config, progress)


def _stage(progress: bool, step: int, text: str) -> None:
    """Say which of the five stages runs now (stderr, with the progress bars)."""
    if progress:
        print(f"cosmiq demo [{step}/5] {text}", file=sys.stderr, flush=True)


def _run(out_dir: Path, config: DemoConfig, progress: bool) -> DemoResult:
    timings, names = {}, {}
    start = time.perf_counter()
    with staged_directory(out_dir, overwrite=True) as stage:
        clock = time.perf_counter()
        _stage(progress, 1, f"simulating {config.n_train} training frames of {config.train_size}x{config.train_size} "
               f"and {config.n_test} held-out frames of {config.test_size}x{config.test_size}")
        train_set, test_set = demo_datasets(config)
        timings["simulate training set"] = time.perf_counter() - clock

        common = dict(image=train_set.image, mask=train_set.mask, ignore=train_set.ignore, directory=str(stage),
                      hidden=config.hidden, norm_layer=config.norm, batch_size=config.batch_size, seed=config.seed,
                      verbose=False, use_tqdm=progress)
        clock = time.perf_counter()
        _stage(progress, 2, f"training the deterministic twin (hidden={config.hidden}, {config.det_epochs} epochs)")
        det_trainer = train(name="deterministic", epoch=config.det_epochs, epoch_phase0=config.det_epoch_phase0,
                            lr=config.det_lr, **common)
        det = det_trainer.train()
        timings["train deterministic"] = time.perf_counter() - clock
        clock = time.perf_counter()
        _stage(progress, 3, f"training the VI model from the twin ({config.vi_epochs} epochs, T_val={config.T_val})")
        vi_trainer = train(name="vi", epoch=config.vi_epochs, epoch_phase0=config.vi_epoch_phase0, lr=config.vi_lr,
                           bayesian=True, kl_beta=config.kl_weight, init_from=det, init_scale=config.init_scale,
                           prior_scale=config.prior_scale, T_val=config.T_val, **common)
        vi = vi_trainer.train()
        timings["train VI"] = time.perf_counter() - clock
        names.update(deterministic="deterministic.pth", vi="vi.pth")

        predictors = {"VI (ours)": vi, "deterministic (ours)": det}
        if config.shipped is not None:
            predictors[shipped_label(config.shipped)] = load_model(config.shipped)
        if config.deepcr and importlib.util.find_spec("deepCR") is not None:
            predictors["deepCR ACS-WFC"] = DeepCRPeer("ACS-WFC")
        if config.lacosmic:
            predictors["LACosmic"] = LACosmicPeer(config.lacosmic_sigclips)
        clock = time.perf_counter()
        _stage(progress, 4, f"comparing {', '.join(predictors)} on {config.n_test} held-out frames (T={config.T})")
        comparison = compare(predictors, test_set, out_dir=stage, T=config.T, seed=config.seed, progress=progress)
        timings["compare (held-out frames)"] = time.perf_counter() - clock
        names.update({f"table_{'csv' if k == 'csv' else 'md'}" if k in ("csv", "markdown") else k: p.name
                      for k, p in comparison.files.items()})

        clock = time.perf_counter()
        _stage(progress, 5, f"FITS maps of held-out frame {config.map_frame} (VI model), figures and report.md")
        names.update(_frame_products(stage, test_set, config, vi))
        names["training_png"] = _training_figure(stage / "training.png", det_trainer, vi_trainer)
        timings["FITS maps and figures"] = time.perf_counter() - clock
        timings["total"] = time.perf_counter() - start
        (stage / "report.md").write_text(_report(config, comparison, timings, names, det, vi, predictors))
        names["report"] = "report.md"
    files = {key: out_dir / name for key, name in names.items()}
    return DemoResult(out_dir=out_dir, files=dict(sorted(files.items())), table=comparison.table,
                      timings_s=timings, config=config)


def shipped_label(name: str) -> str:
    """The comparison's label of a published model of ours (``"ACS-WFC-VI (ours, shipped)"``)."""
    return f"{name} (ours, shipped)"


def _frame_products(stage: Path, test_set: SimulatedDataset, config: DemoConfig, vi) -> dict:
    """FITS input + product maps of one held-out frame (as ``cosmiq predict`` writes them), and a PNG."""
    frame = test_set.frame(config.map_frame)
    fits_in = stage / "frame.fits"
    write_hdulist_atomic(simulated_hdulist(frame.image, frame.mask, frame.ignore, frame.meta), fits_in)
    predict_fits(vi, fits_in, stage / "frame_cosmiq.fits", model_file=stage / "vi.pth", T=config.T,
                 seed=config.seed, progress=False)
    prediction = predict(vi, frame.image, T=config.T, ignore=frame.ignore, seed=config.seed)
    fig = maps_figure(frame, prediction)
    fig.suptitle(f"Held-out frame {config.map_frame}: {frame.meta['field']} {frame.meta['filter']}, "
                 f"{frame.meta['exptime_s']:.0f} s (VI model)")
    fig.savefig(stage / "maps.png", dpi=110)
    _close(fig)
    return {"fits_input": "frame.fits", "fits_maps": "frame_cosmiq.fits", "maps_png": "maps.png"}


def maps_figure(frame, prediction):
    """`plot_maps.plot_maps` of a simulated frame on a 2 x 3 grid of 5-inch panels, the epistemic map
    on a log scale (it spans decades: ~1e-4 nats on sky, ~0.1 on CR edges) and the error legend
    below its panel, clear of the axis labels.  Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import LogFormatterSciNotation

    from ..evaluation.plot_maps import plot_maps

    fig, grid = plt.subplots(2, 3, figsize=(15, 10.5), layout="constrained", sharex=True, sharey=True)
    axes = plot_maps(frame.image, prediction, truth=frame.mask, ignore=frame.ignore, axes=grid.ravel()[:5])
    grid[1, 2].set_axis_off()  # the sixth cell holds the error legend
    epistemic = axes[3].images[0]
    values = np.ma.masked_array(prediction.epistemic, np.ma.getmaskarray(epistemic.get_array()))
    top = float(values.max()) if values.count() else 0.0
    if top > 0:
        floor = min(max(top * 1e-4, float(values[values > 0].min())), top / 10)  # <= 4 decades
        epistemic.set_data(np.ma.masked_array(np.maximum(values.filled(floor), floor), values.mask))
        epistemic.set_norm(LogNorm(vmin=floor, vmax=top))
        epistemic.colorbar.formatter = LogFormatterSciNotation()
        axes[3].set_title(f"Epistemic (log scale), {prediction.method}, T={prediction.T}")
    legend = axes[4].get_legend()
    if legend is not None:
        handles = legend.legend_handles
        legend.remove()
        grid[1, 2].legend(handles=handles, loc="center", title="Pixels", frameon=False)
    return fig


def _training_figure(path: Path, det_trainer, vi_trainer) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    det_trainer.plot_loss(axes[0]).set_title("Deterministic twin")
    vi_trainer.plot_loss(axes[1]).set_title("VI model (from the twin)")
    fig.savefig(path, dpi=90)
    _close(fig)
    return path.name


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _report(config: DemoConfig, comparison, timings: dict, names: dict, det, vi, predictors) -> str:
    def best(result):
        epochs = result.history["epochs"]
        k = result.history.get("best_epoch") or len(epochs)
        e = epochs[k - 1]
        return (f"epoch {k}/{len(epochs)}: val loss {e['val_loss']:.4g}, TPR {e['val_tpr']:.1f} %, "
                f"FPR {e['val_fpr']:.3f} % at p > 0.5")

    figures = [(k, t) for k, t in (("roc", "ROC"), ("reliability", "Reliability"),
                                   ("risk_coverage", "Risk-coverage"), ("error_vs_entropy", "Error rate vs entropy"))
               if k in names]
    lines = [
        "# cosmiq_pyro demo",
        "",
        f"cosmiq_pyro {_version()}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{platform.machine()}; total {timings['total'] / 60:.1f} min.",
        "",
        "## Data",
        "",
        f"- training: {config.n_train} simulated {config.train_size}x{config.train_size} frames (seed "
        f"{config.train_seed}; 90 % train / 10 % validation), fields {', '.join(config.fields)}, filters "
        f"{', '.join(config.filters)}, exposures {config.exptime_s[0]:g}-{config.exptime_s[1]:g} s;",
        f"- held out: {config.n_test} simulated {config.test_size}x{config.test_size} frames (seed "
        f"{config.test_seed}, never trained on).",
        "",
        "## Models",
        "",
        f"- deterministic twin (`{names['deterministic']}`): UNet2Sigmoid hidden={config.hidden}, norm={config.norm}, "
        f"{config.det_epochs} epochs ({config.det_epoch_phase0} with batch statistics), Adam lr {config.det_lr:g}, "
        f"batch {config.batch_size}; best {best(det)}.",
        f"- VI model (`{names['vi']}`): UNet2SigmoidVI, posterior means from the twin, initial sd "
        f"{config.init_scale:g}, prior N(0, {config.prior_scale:g}), kl_beta {config.kl_weight:.3g}, "
        f"{config.vi_epochs} SVI epochs, lr {config.vi_lr:g}; best {best(vi)}.",
        *([f"- shipped model (`{config.shipped}`, package data, not trained here): the published Bayesian "
           "model, loaded by name (`cosmiq_pyro.load`); its recipe and acceptance are in docs/validation.md."]
          if config.shipped is not None else []),
        f"- peers: {', '.join(k for k in predictors if 'ours' not in k) or 'none'}"
        + ("" if "deepCR ACS-WFC" in predictors or not config.deepcr else " (deepCR not installed)") + ".",
        "",
        f"![training curves]({names['training_png']})",
        "",
        f"## Comparison on the held-out frames (T = {config.T} posterior draws)",
        "",
        comparison.markdown,
        "",
    ]
    for key, title in figures:
        lines += [f"### {title}", "", f"![{title}]({names[key]})", ""]
    lines += [
        "## One held-out frame",
        "",
        f"`{names['fits_input']}` (simulated input: SCI, CRMASK, IGNORE) and `{names['fits_maps']}` "
        "(PROB, ENTROPY, EPISTEMIC, MASK, as `cosmiq predict` writes them).",
        "",
        f"![maps]({names['maps_png']})",
        "",
        "## Time",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()],
        "",
        "Reproduce in Python: `from cosmiq_pyro.app.demo import DemoConfig, run_demo; run_demo('demo_out', DemoConfig())`.",
        "",
    ]
    return "\n".join(lines)


def _version() -> str:
    from .._version import __version__

    return __version__
