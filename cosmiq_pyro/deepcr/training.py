"""deepCR's training API, ``train(image, ...).train()``, for both cosmiq_pyro models.

A facade over `fit.fit_deterministic` / `fit.fit_svi`: it turns deepCR 0.3.1's keyword arguments
into datasets (`data.PairDataset`, `data.DarkMixDataset`, `data.SimulatedDataset`), a model
(`UNet2Sigmoid` or `UNet2SigmoidVI`) and fit options, and writes one checkpoint,
``{directory}/{name}.pth``, that `load_model` (and the `deepCR` facade) reads.  deepCR's methods
are here for both models: `train`, `train_phase0`, `train_phase1`, `save`, `load`,
`plot_loss`, `plot_example`, and its attributes `epoch_mask` and `validation_loss`.

How deepCR's keywords map (deepCR 0.3.1 ``deepCR/training.py``):

================== ====================================================================
deepCR keyword     here
================== ====================================================================
image, mask,       'pair': (N, W, W) arrays or a list of ``.npy`` files, as deepCR
ignore, sky        (`data.PairDataset`).  'simulate': image = CR-free images, mask = dark
                   frames [CR charge, CR mask] (`data.DarkMixDataset`), as deepCR.
mode               'pair' and 'simulate' as deepCR; 'synthetic' trains on cosmiq_pyro's own
                   simulator (`data.SimulatedDataset`; image = number of frames).
aug_sky            'pair': sky augmentation of the *training* part (deepCR also augments the
                   validation part; here validation frames stay as they are).  'simulate':
                   both parts, as deepCR.
aug_img, noise,    'simulate' only, deepCR's meaning (`data.DarkMixDataset`): log-uniform
saturation,        image scaling, shot noise, clipping, darks per training / validation
n_mask_train,      image (drawn without replacement; deepCR may add one dark twice), and
n_mask_val, norm,  standardisation by the median / std of the pixels below the
percentile_limit   ``percentile_limit`` percentile.  Validation frames are fixed per item
                   (deepCR reseeds NumPy before each validation pass for the same effect).
epoch,             total epochs; deepCR's two phases: ``epoch_phase0`` epochs with batch
epoch_phase0       statistics (default ``int(0.4 * epoch + 0.5)``, deepCR's rounding), then
                   frozen batch-norm statistics at ``lr / 2.5`` (``fit``'s ``phase0_epochs``).
lr                 Adam learning rate; default per model, see `DEFAULT_LR`.
auto_lr_decay,     ReduceLROnPlateau on the validation loss (``factor``, ``patience``);
lr_decay_*         deepCR also sets ``cooldown=2, threshold=0.005``, fit uses torch's
                   defaults (0, 1e-4).  Phase 1 gets a fresh scheduler (deepCR's stays bound
                   to the phase-0 optimiser).
save_after         deepCR writes the best-so-far model only after epoch ``save_after``.
                   Here ``{name}.pth`` is written at every improving epoch from epoch
                   ``save_after`` on (default 0: from the first; atomic, so an interrupted
                   run leaves the last good file) and once more when training ends: the
                   file ends with the best validation epoch and the full history.  An
                   existing ``{name}.pth`` is replaced, as deepCR does (``overwrite=False``
                   refuses instead).
verbose            print the setup before training and a per-epoch table after it.
use_tqdm,          progress bars (tqdm.auto picks the notebook widget in Jupyter).
use_tqdm_notebook
plot_every         `plot_example` after every ``plot_every``-th epoch (default None: never;
                   deepCR's default 10 writes a PNG every 10 epochs).
directory, name    checkpoint ``os.path.join(directory, name + ".pth")`` (deepCR: date-
                   and epoch-stamped files, which `save` writes).
================== ====================================================================

The network's normalisation layers are ``norm_layer`` (``norm`` is deepCR's input
standardisation).  Inputs are raw electrons: deepCR 0.3.1's trainer standardises every batch
(``(x - mean) / std``) while its ``deepCR.clean`` does not, so its own custom models see
different inputs in training and use; cosmiq_pyro trains and predicts on the same electrons.
"""
from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import numpy as np

from ..inference.fit import fit_deterministic, fit_svi
from ..models.bayesian import UNet2SigmoidVI
from ..models.priors import Prior, make_prior
from ..models.registry import load_model, save
from ..models.results import FitResult
from ..models.unet import UNet2Sigmoid
from ..utils.checks import check_int
from ..utils.torchtools import seeded
from .train_inputs import deterministic_net, training_parts
from .train_report import epoch_table, example_figure, loss_plot

__all__ = ["train", "DEFAULT_LR"]

#: Default Adam learning rate per model (keyed by ``bayesian``): deepCR's 0.005 for both.
#: Measured on 230 simulated 128x128 frames (hidden 8, batch 4, 16 epochs, 6 in phase 0; TPR at
#: 0.5 % FPR on 24 held-out 256x256 frames): deterministic 72.0 % at lr 0.01, 80.1 % at 0.02;
#: at batch 16, lr 0.005 and hidden 16, 35.8 % after 10 epochs (too few steps).  The VI model
#: trains at the same rates (72.8 % from scratch at 0.02: it lags the twin), and from the
#: trained twin (``init_from``, phase 1 only) 4 SVI epochs at 0.005 improve on it; that is
#: what `cosmiq_pyro.app.demo` does.
DEFAULT_LR = {False: 5e-3, True: 5e-3}


class train:  # noqa: N801 -- deepCR's class name, so existing code runs unchanged
    """Train a deepCR-style mask model, deterministic or Bayesian, and save it.

    Parameters
    ----------
    image : numpy.ndarray, list of path, int or Dataset
        mode 'pair': (N, W, W) images in electrons, or a list of ``.npy`` files each (2 or 3, W, W)
        = [image, CR mask, optional ignore] (deepCR's layouts).  mode 'simulate': CR-free images,
        ``.npy`` files each (W, W) or (2, W, W) = [image, ignore], or an (N, W, W) array.  mode
        'synthetic': the number of simulated 256x256 frames, or a `data.SimulatedDataset`.  Any
        torch Dataset of ``(image, mask, ignore)`` items is also accepted.
    mask, ignore : numpy.ndarray, optional
        'pair': (N, W, W) CR masks and loss masks, with an image array.  'simulate': ``mask`` is
        the dark frames, ``.npy`` files each (2, W, W) = [CR charge (e-), CR mask].
    sky : float or numpy.ndarray, optional
        Sky levels (electrons) for ``aug_sky``; with 'pair' files, deepCR's ``sky.npy`` is read.
    mode : {"pair", "simulate", "synthetic"}
    aug_sky : (float, float)
        Training images get ``sky * U(aug_sky[0], aug_sky[1])`` added.
    aug_img, noise, saturation, n_mask_train, n_mask_val, norm, percentile_limit
        mode 'simulate' (`data.DarkMixDataset`), deepCR's meaning and defaults.  ``norm=True``
        trains on standardised images: the model then needs inputs standardised the same way.
    name : str
        Checkpoint name: ``{directory}/{name}.pth``.
    hidden : int, optional
        Channels of the first U-Net level (deepCR: 32).  Default: the ``init_from`` net's, else 32;
        a value that differs from ``init_from``'s is a ValueError.
    epoch, epoch_phase0, batch_size, lr, auto_lr_decay, lr_decay_patience, lr_decay_factor,
    save_after, plot_every, verbose, use_tqdm, use_tqdm_notebook, directory
        deepCR's meaning; see the module docstring for where they differ.
    bayesian : bool
        Train the variational twin `UNet2SigmoidVI` by SVI instead of the deterministic net.
    kl_beta : float, optional
        Weight of the KL term in the SVI loss (`fit.fit_svi`); default (None) ``1 / pixels per
        frame``, the exact per-pixel ELBO, as `fit.fit_svi`.
    prior : {"iid", "kaiming", "centred"} or Prior
        Bayesian model only: the weight prior (`models.priors.make_prior`): iid ``N(0, s^2)``;
        layer-wise Kaiming ``N(0, (g / sqrt(fan_in))^2)``; or ``N(w_init, s^2)`` centred on the
        ``init_from`` weights (which it needs).  Or a `models.priors.Prior` object.
    prior_scale : float, optional
        The prior's number: the sd ``s`` (iid: default 1; centred: default 0.1) or the Kaiming
        gain ``g`` (default sqrt 2).
    T_val : int
        Posterior draws averaged for the validation loss of the Bayesian model.
    norm_layer : {"batch", "group", "none"}
        Normalisation layers (deepCR's ACS-WFC model: batch).
    init_from : str, Path, UNet2Sigmoid or FitResult, optional
        Bayesian model only: start the posterior means from these deterministic weights (e.g. a
        trained twin's checkpoint); the cheapest way to a good posterior mean.
    init_scale : float
        Bayesian model only: initial posterior standard deviation of every weight.
    seed : int
        Seed of the initial weights, the split, the shuffling and the augmentation.
    resume : bool
        Continue from ``{directory}/{name}.pth`` if it exists: its weights (and guide), for the
        epochs that remain of ``epoch``, in the batch-norm phase it had reached.  The learning
        rate restarts at the phase's initial value.  Every continued epoch is recorded in the
        checkpoint's history; its weights change only if a continued epoch reaches a lower
        validation loss.
    overwrite : bool
        Replace an existing ``{directory}/{name}.pth`` (default True: deepCR's behaviour, so
        two runs with the default ``name`` in one directory both train, the second replacing the
        first's file).  False: refuse to start when the file exists (unless ``resume``), as
        ``cosmiq train`` does without ``--overwrite``.
    device : str, optional
        "cpu", "cuda", deepCR's "CPU"/"GPU"; default CUDA when available.

    Attributes
    ----------
    path : pathlib.Path
        The checkpoint file.
    result : FitResult or None
        After `train()`: model (best validation epoch), guide, history.
    validation_loss : list of float
        Validation loss per epoch (deepCR's attribute).
    epoch_mask : int
        Epochs completed (deepCR's attribute).
    """

    def __init__(self, image, mask=None, ignore=None, sky=None, mode="pair", aug_sky=(0, 0), aug_img=(1, 1),
                 noise=False, saturation=1e5, n_mask_train=1, n_mask_val=1, norm=False, percentile_limit=50,
                 name="model", hidden=None, epoch=50, epoch_phase0=None, batch_size=16, lr=None,
                 auto_lr_decay=True, lr_decay_patience=4, lr_decay_factor=0.1, save_after=0, plot_every=None,
                 verbose=True, use_tqdm=False, use_tqdm_notebook=False, directory="./", *, bayesian=False,
                 kl_beta=None, prior="iid", prior_scale=None, T_val=4, norm_layer="batch", init_from=None,
                 init_scale=1e-3, seed=0, resume=False, overwrite=True, device=None):
        if isinstance(norm, str):
            raise TypeError(f"norm={norm!r}: norm is deepCR's input standardisation for mode='simulate' (a bool); "
                            "the network's normalisation layers are norm_layer='batch' | 'group' | 'none'")
        if plot_every is not None:
            plot_every = check_int(plot_every, "plot_every", minimum=1)
        epoch = check_int(epoch, "epoch", minimum=1)
        if epoch_phase0 is None:
            epoch_phase0 = int(0.4 * epoch + 0.5)  # deepCR: int(n_epochs * 0.4 + 0.5)
        if not isinstance(epoch_phase0, (int, np.integer)) or not 0 <= epoch_phase0 <= epoch:
            raise ValueError(f"epoch_phase0 must be an int in [0, epoch={epoch}], got {epoch_phase0!r}")
        if not isinstance(name, str) or not name or os.sep in name:
            raise ValueError(f"name must be a non-empty file name without '{os.sep}', got {name!r}")
        T_val = check_int(T_val, "T_val", minimum=1)
        if init_from is not None and not bayesian:
            raise ValueError("init_from starts a Bayesian model from deterministic weights; "
                             "it needs bayesian=True")
        if not bayesian and (prior != "iid" or prior_scale is not None):
            raise ValueError("prior and prior_scale describe the Bayesian model's weight prior; they need bayesian=True")
        self.name, self.directory = name, os.fspath(directory)
        self.path = Path(self.directory) / f"{name}.pth"
        self.bayesian = bool(bayesian)
        self.n_epochs, self.n_epochs_phase0 = int(epoch), int(epoch_phase0)
        self.batch_size = batch_size
        self.lr = DEFAULT_LR[self.bayesian] if lr is None else lr
        self.lr_decay_factor = lr_decay_factor if auto_lr_decay else None
        self.lr_decay_patience = lr_decay_patience
        self.save_after = save_after
        self.verbose = bool(verbose)
        self.progress = bool(use_tqdm or use_tqdm_notebook)
        self.kl_beta, self.T_val, self.init_scale = kl_beta, T_val, init_scale
        self.seed, self.resume, self.overwrite, self.device = int(seed), bool(resume), bool(overwrite), device
        self.init_from = deterministic_net(init_from)
        self._init_source = None if init_from is None else (
            os.fspath(init_from) if isinstance(init_from, (str, os.PathLike)) else type(init_from).__name__)
        if self.init_from is not None:
            if hidden is not None and hidden != self.init_from.hidden:
                raise ValueError(f"hidden={hidden!r} but init_from has hidden={self.init_from.hidden}; leave "
                                 "hidden out to take it from init_from")
            hidden = self.init_from.hidden
        hidden = 32 if hidden is None else hidden
        dark_options = dict(aug_img=aug_img, noise=noise, saturation=saturation, n_mask_train=n_mask_train,
                            n_mask_val=n_mask_val, norm=bool(norm), percentile_limit=percentile_limit)
        self.train_data, self.val_data = training_parts(image, mask, ignore, sky, mode, aug_sky, self.seed, dark_options)
        self.mode, self.every = mode, plot_every
        with seeded(self.seed):
            kind = UNet2SigmoidVI if self.bayesian else UNet2Sigmoid
            extra = {"prior": self._prior(prior, prior_scale)} if self.bayesian else {}
            self.network = kind(n_channels=1, n_classes=1, hidden=hidden, norm=norm_layer, **extra)
        self.result: FitResult | None = None
        self.validation_loss: list[float] = []
        self.epoch_mask = 0

    def _prior(self, prior, scale) -> Prior:
        if isinstance(prior, Prior):
            if scale is not None:
                raise ValueError("prior_scale goes with a prior name; a Prior object carries its own scale")
            return prior
        return make_prior(prior, scale, weights=self.init_from, source=self._init_source)

    def __repr__(self) -> str:
        kind = "UNet2SigmoidVI" if self.bayesian else "UNet2Sigmoid"
        return (f"train({kind}(hidden={self.network.hidden}, norm={self.network.norm!r}), "
                f"{len(self.train_data)} train / {len(self.val_data)} val frames, epoch={self.n_epochs}, "
                f"epoch_phase0={self.n_epochs_phase0}, lr={self.lr}, -> {str(self.path)!r})")

    def train(self) -> FitResult:
        """Run both phases; write ``{directory}/{name}.pth``; return the `FitResult`.

        Ctrl-C stops after the last complete epoch: the result (and the file) hold the best
        validation epoch so far, and ``result.interrupted`` is True.  Resume, history and the
        checkpoint file are `cosmiq_pyro.inference.runner.TrainingRun`'s.
        """
        if self.path.exists() and not (self.resume or self.overwrite):
            raise FileExistsError(f"{str(self.path)!r} exists; pass resume=True to continue it or "
                                  "overwrite=True to replace it")
        if self.verbose:
            print(self._setup_text())
        return self._run(self.n_epochs, self.n_epochs_phase0, resume=self.resume)

    def train_phase0(self, epochs: int) -> FitResult:
        """``epochs`` more epochs with batch statistics (batch norm in training mode) at ``lr``
        (deepCR's ``train_phase0``), continuing the run: after `train`, `load` or an earlier call
        from the run's checkpoint (its best weights), else from the initial weights."""
        return self._more(epochs, phase=0)

    def train_phase1(self, epochs: int) -> FitResult:
        """``epochs`` more epochs with the batch-norm running statistics frozen, at ``lr / 2.5``
        (deepCR's ``train_phase1``; its documented way to go on while the validation loss still
        falls: ``trainer.train_phase1(20)``).  A fresh optimiser and a fresh LR scheduler bound to
        it (deepCR resets the scheduler of the phase-0 optimiser instead)."""
        return self._more(epochs, phase=1)

    def _more(self, epochs, phase: int) -> FitResult:
        epochs = check_int(epochs, "epochs", minimum=1)
        continuing = self.result is not None
        if continuing and not self.path.exists():
            raise FileNotFoundError(f"{str(self.path)!r}, this run's checkpoint, is gone; load() a saved state "
                                    "to continue from it")
        if not continuing and self.path.exists() and not (self.resume or self.overwrite):
            raise FileExistsError(f"{str(self.path)!r} exists; pass resume=True to continue it or "
                                  "overwrite=True to replace it")
        resume = continuing or self.resume
        if continuing:
            done = len(self.result.history.get("epochs", []))
        elif resume and self.path.exists():
            done = len(load_model(self.path).history.get("epochs", []))
        else:
            done = 0
        return self._run(done + epochs, done + epochs if phase == 0 else done, resume=resume)

    def _run(self, epochs: int, phase0_epochs: int, resume: bool) -> FitResult:
        """Fit on the run's checkpoint: ``epochs`` in all (recorded ones included), the first
        ``phase0_epochs`` of them with batch statistics."""
        options = dict(epochs=epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                       progress=self.progress, checkpoint=self.path, resume=resume,
                       save_after=int(self.save_after), phase0_epochs=phase0_epochs,
                       lr_decay_factor=self.lr_decay_factor, lr_decay_patience=self.lr_decay_patience,
                       device=self.device)
        if self.every is not None:
            options["on_epoch"] = self._on_epoch
        if self.bayesian:
            result = fit_svi(self.network, self.train_data, self.val_data, kl_beta=self.kl_beta,
                             val_samples=self.T_val, init_scale=self.init_scale, init_from=self.init_from,
                             **options)
        else:
            result = fit_deterministic(self.network, self.train_data, self.val_data, **options)
        self.result = result
        return self._finish(result)

    def _on_epoch(self, record: dict, model, guide) -> None:
        """deepCR's ``plot_every``: `plot_example` after every ``plot_every``-th epoch."""
        if record["epoch"] % self.every == 0:
            import matplotlib.pyplot as plt

            self.epoch_mask = record["epoch"]
            plt.close(self.plot_example(model=FitResult(model=model, guide=guide)))

    def _finish(self, result: FitResult, report: bool = True) -> FitResult:
        epochs = result.history.get("epochs", [])
        self.validation_loss = [e["val_loss"] for e in epochs]
        self.epoch_mask = len(epochs)
        if self.verbose and report:
            print(epoch_table(epochs))
            print(f"{'interrupted; ' if result.interrupted else ''}best validation epoch "
                  f"{result.history.get('best_epoch')} saved to {self.path}")
        return result

    def _setup_text(self) -> str:
        kind = "Bayesian UNet2SigmoidVI (SVI)" if self.bayesian else "deterministic UNet2Sigmoid"
        resume = " (continuing the epochs it records)" if self.resume and self.path.exists() else ""
        lines = [f"Training {kind}, hidden={self.network.hidden}, norm={self.network.norm!r}: "
                 f"{len(self.train_data)} training / {len(self.val_data)} validation frames",
                 f"{self.n_epochs} epoch(s): {self.n_epochs_phase0} with batch statistics, "
                 f"{self.n_epochs - self.n_epochs_phase0} with frozen batch-norm statistics at lr/2.5; lr={self.lr}",
                 f"checkpoint: {self.path}{resume}"]
        return "\n".join(lines)

    def save(self) -> str:
        """Write the current model to ``{directory}/{date}_{name}_epoch{N}.pth`` (``N`` =
        `epoch_mask`) and return that file name without ``.pth`` (deepCR's ``save``; pass it to
        `load`).  The file is a cosmiq_pyro checkpoint (weights, guide, history):
        ``deepCR(mask="{directory}/{file}.pth")`` reads it."""
        if self.result is None and self.bayesian:
            raise ValueError("nothing to save yet: a Bayesian model's weights live in its guide; call train() first")
        stem = f"{datetime.date.today().isoformat()}_{self.name}_epoch{self.epoch_mask}"
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        save(Path(self.directory) / f"{stem}.pth", self.result if self.result is not None else self.network)
        return stem

    def load(self, filename) -> FitResult:
        """Continue from the model state in ``{directory}/{filename}.pth`` (a name `save` returned)
        or in a path ending in ``.pth`` (deepCR's ``load``).

        `epoch_mask` and `validation_loss` come from the file's history (from the ``epoch<N>`` of
        its name when it has none).  The state becomes this run's: it is written to
        ``{directory}/{name}.pth``, which `train_phase0` / `train_phase1` continue.
        """
        text = os.fspath(filename)
        if text.endswith(".pth") and (os.path.isabs(text) or os.path.exists(text)):
            path = Path(text)
        else:
            path = Path(self.directory) / (text if text.endswith(".pth") else f"{text}.pth")
        result = load_model(path, model=self.network)  # a ValueError names any architecture difference
        if not self.path.exists() or not self.path.samefile(path):
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            save(self.path, result)
        self.result = result
        self._finish(result, report=False)
        named = re.search(r"epoch(\d+)$", path.stem)
        if not result.history.get("epochs") and named:
            self.epoch_mask = int(named[1])
        return result

    def plot_example(self, index: int = 0, *, model=None):
        """Validation frame ``index``, the model's mask (probability > 0.5) and the true mask side by
        side (deepCR's ``plot_example``), saved to ``{directory}/{name}epoch{N}trainplot.png``
        (deepCR's file name, ``N`` = `epoch_mask`); returns the figure.

        A Bayesian model shows the posterior mean of ``T_val`` draws.  ``model`` (a `FitResult`)
        replaces the trainer's current one.
        """
        from ..inference.predictive import predict

        if model is None:
            if self.result is None and self.bayesian:
                raise ValueError("nothing to plot yet: a Bayesian model needs its guide; call train() first")
            model = self.result if self.result is not None else self.network
        image, mask, _ = self.val_data[check_int(index, "index", minimum=0)]
        image = image[0].numpy()  # (W, W)
        prob = predict(model, image, T=self.T_val, seed=self.seed, device=self.device, progress=False).prob
        return example_figure(image, prob, mask[0].numpy(), self.epoch_mask,
                              os.path.join(self.directory, f"{self.name}epoch{self.epoch_mask}trainplot.png"))

    def plot_loss(self, ax=None):
        """Training and validation loss per epoch (deepCR's ``plot_loss``); returns the axes.

        Called without ``ax`` (as in deepCR) it also saves the figure to
        ``{directory}/{name}trainplot.png``, deepCR's file.
        """
        if self.result is None:
            raise ValueError("nothing to plot yet: call train() first")
        target = os.path.join(self.directory, f"{self.name}trainplot.png") if ax is None else None
        return loss_plot(self.result.history.get("epochs", []), self.bayesian, ax, target)
