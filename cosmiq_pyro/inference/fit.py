"""Training: `fit_deterministic` (the deepCR-style twin) and `fit_svi` (the Bayesian model).

Both run one data loop, `_train`, and differ only in the loss of a batch and in how a
validation batch is turned into probabilities:

* deterministic: ``BCE_mean(logits, y)`` over the non-ignored pixels of the batch;
* variational: the scaled negative ELBO of `objective.svi_loss`,
  ``BCE_mean + kl_beta * (log q(w) - log p(w)) / N_train`` with ``w ~ q`` (default
  ``kl_beta = 1 / pixels per image``: the exact negative ELBO per pixel).

deepCR's two-phase batch-norm schedule is available to both (``phase0_epochs``): phase 0 trains
with batch statistics; phase 1 freezes the running statistics (norm layers in eval mode) and
continues at ``lr / 2.5`` with a fresh optimiser *and a fresh LR scheduler bound to it* (deepCR's
scheduler stays bound to the phase-0 optimiser, a bug not reproduced here).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.datasets import as_dataset
from ..models.bayesian import UNet2SigmoidVI, copy_point_estimates, sample_probs, weight_state
from ..models.guides import DEFAULT_INIT_SCALE, guide_locs, guide_param_groups, guide_scales, make_guide
from ..models.registry import load_model, save
from ..models.results import FitResult
from ..models.unet import UNet2Sigmoid
from ..utils.checks import check_float, check_int, check_seed
from ..utils.torchtools import resolve_device, seeded
from .objective import svi_loss
from .runner import TrainingRun
from .temperature import calibrate as calibrate_temperature

__all__ = ["PHASE1_LR_FACTOR", "SCALE_LR", "NUM_PARTICLES", "masked_bce", "fit_deterministic", "fit_svi"]

PHASE1_LR_FACTOR = 1 / 2.5  # deepCR: phase-1 learning rate = lr / 2.5
#: Learning rate of the guide's scale parameters (`fit_svi`), whatever the means' ``lr``.  Adam moves
#: each unconstrained scale ``rho`` (``sigma = softplus(rho)`` ~ ``exp(rho)`` for small sigma) by about
#: its learning rate per step, i.e. sigma by a factor of about ``exp(scale_lr)``.  With one learning
#: rate of 1e-3, a few hundred steps move sigma by less than 2x, so the width stays where
#: ``init_scale`` put it.  At 0.05, two fits of deepCR's ACS-WFC weights that differed only in
#: init_scale (1e-3 vs 1e-2) ended (300 steps) with median sigma 0.503 vs 0.502 and mean epistemic
#: 2.3e-3 vs 2.5e-3; at 1e-3 they ended at 0.0013 vs 0.013 and 2.9e-7 vs 2.0e-5 (docs/validation.md, "Learned
#: posterior widths").  From scratch (hidden 8, 24 simulated 64x64 frames, batch 4, 50 epochs, exact
#: ELBO; docs/defaults.md) 0.05 left the last layer's width 3.6x apart (2.2x at 0.1 with one
#: particle); 0.1 with `NUM_PARTICLES` = 2 ended every layer within 1.9x (seed 0) and 1.45x (seed 1).
SCALE_LR = 0.1
#: Monte Carlo draws of the weights per SVI step (`fit_svi`).  The reparameterised gradient of a
#: width is noisy: with one draw the widths of layers the data pin down only weakly (the 1x1 head)
#: random-walk wherever ``init_scale`` started them; two draws halve the gradient variance (and
#: double the cost of a step).  Measured in docs/defaults.md; ``num_particles=1`` is the old speed.
NUM_PARTICLES = 2
_NORM_LAYERS = (nn.BatchNorm2d, nn.GroupNorm)


def masked_bce(logits: torch.Tensor, y: torch.Tensor, ignore: torch.Tensor | None = None,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over the non-ignored pixels.

    .. math:: \\mathrm{BCE}_\\text{mean} = -\\frac{1}{n_\\text{valid}} \\sum_{i\\,\\text{valid}}
              u_i \\left[y_i \\log \\sigma(z_i) + (1 - y_i) \\log(1 - \\sigma(z_i))\\right]

    ``logits``, ``y``, ``ignore``, ``weight`` (the per-pixel weights ``u_i``; None: all 1):
    (B, 1, H, W).  Zero when every pixel is ignored.
    """
    per_pixel = F.binary_cross_entropy_with_logits(logits, (y > 0.5).to(logits.dtype), reduction="none")
    if weight is not None:
        per_pixel = per_pixel * weight.to(per_pixel.dtype)
    if ignore is None:
        return per_pixel.mean()
    valid = (ignore < 0.5).to(per_pixel.dtype)
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1.0)


def fit_deterministic(net: UNet2Sigmoid, train, val=None, *, epochs: int, batch_size: int = 16,
                      lr: float = 5e-3, seed: int = 0, progress: bool = True, checkpoint=None,
                      resume: bool = False, save_after: int = 0, phase0_epochs: int | None = None,
                      lr_decay_factor: float | None = 0.1, lr_decay_patience: int = 4,
                      device=None, on_epoch=None, calibrate: bool = False) -> FitResult:
    """Train the deterministic twin with Adam on the masked mean BCE.

    Parameters
    ----------
    net : UNet2Sigmoid
        Trained in place (and returned in ``FitResult.model``, in eval mode).
    train, val : Dataset or tuple of arrays
        A dataset of ``(image, mask, ignore)`` items (see `cosmiq_pyro.data`) or arrays
        ``(image, mask[, ignore])`` of shape (N, H, W).
    epochs : int
        Total epochs (phase 0 + phase 1).
    batch_size, lr, seed
        Minibatch size, Adam learning rate, seed of shuffling and initial randomness.
    progress : bool
        Show tqdm bars (epochs and batches).
    checkpoint : str or Path, optional
        Save here (atomically) after every epoch that improves the validation loss (every epoch
        without ``val``), and once more at the end with the whole history; the file always holds
        the best weights (`runner.TrainingRun`).
    resume : bool
        Continue from ``checkpoint`` if it exists: its weights (and guide) and history; ``epochs``
        counts the recorded epochs too, so only the rest run (in the phase they reach, the
        learning rate restarting at that phase's initial value).  Epochs that do not beat the
        checkpoint's best are recorded; its best weights are kept.
    save_after : int
        Write improvements only from this (1-based) epoch on (deepCR's ``save_after``).
    phase0_epochs : int, optional
        deepCR's schedule: this many epochs with batch statistics, the rest with frozen
        running statistics at ``lr / 2.5``.  None: one phase.
    lr_decay_factor, lr_decay_patience
        ReduceLROnPlateau on the validation loss (None disables it, as does ``val=None``).
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    on_epoch : callable, optional
        Called after every epoch as ``on_epoch(record, model, guide)``: ``record`` is the epoch's
        history entry, the model holds that epoch's weights (e.g. the deepCR facade's
        ``plot_every``).
    calibrate : bool
        With validation data, fit the logit temperature on it at the end of training
        (`inference.temperature.calibrate`: ``FitResult.temperature``, stored in the checkpoint
        and applied by `predict`).  A validation set without CR pixels, or one on which no
        temperature in (0.01, 100) is best, leaves it at 1 with a warning.

    Returns
    -------
    FitResult
        With validation data, the model holds the weights of the best validation epoch.
    """
    if not isinstance(net, UNet2Sigmoid) or isinstance(net, UNet2SigmoidVI):
        raise TypeError(f"fit_deterministic trains a UNet2Sigmoid, got {type(net).__name__} "
                        "(use fit_svi for UNet2SigmoidVI)")
    device = resolve_device(device)
    net.to(device)

    def loss_fn(x, y, ignore, weight=None):
        return masked_bce(net.logits(x), y, ignore, weight)

    def val_probs(x):
        return net(x)

    run = TrainingRun(checkpoint, resume=resume, save_after=save_after)
    run.resume_into(net)
    net.to(device)
    return _train(net, None, [{"params": list(net.parameters())}], loss_fn, val_probs, train, val, run,
                  epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                  phase0_epochs=phase0_epochs, lr_decay_factor=lr_decay_factor,
                  lr_decay_patience=lr_decay_patience, device=device, on_epoch=on_epoch,
                  calibrate=calibrate)


def fit_svi(model: UNet2SigmoidVI, train, val=None, *, epochs: int, batch_size: int = 16, lr: float = 1e-3,
            kl_beta: float | None = None, num_particles: int = NUM_PARTICLES, init_scale: float = DEFAULT_INIT_SCALE, init_from=None,
            guide=None, seed: int = 0, progress: bool = True, checkpoint=None, resume: bool = False,
            save_after: int = 0, val_samples: int = 4, phase0_epochs: int | None = None,
            lr_decay_factor: float | None = 0.1, lr_decay_patience: int = 4, device=None,
            on_epoch=None, scale_lr: float = SCALE_LR, calibrate: bool = False) -> FitResult:
    """Fit a mean-field Normal posterior over the weights of ``model`` by SVI.

    The guide is `pyro.infer.autoguide.AutoNormal` (softplus-parameterised scales); each step
    minimises, with a torch Adam optimiser over guide and norm-layer parameters,

    .. math:: \\mathcal{L} = \\mathrm{BCE}_\\text{mean}(\\text{valid pixels of the batch})
              + \\beta \\, \\frac{\\log q(w) - \\log p(w)}{N_\\text{train}}, \\qquad w \\sim q,

    (`pyro.infer.Trace_ELBO`, averaged over ``num_particles`` draws).  The default
    ``kl_beta = 1 / P``, ``P`` the pixels per training image, makes this exactly the negative
    ELBO per pixel (the ELBO of the ``N_train * P`` pixel labels divided by ``N_train * P``).
    With it and the default ``scale_lr`` and ``num_particles`` the data set the posterior
    widths: two fits from scratch that differ only in ``init_scale`` (1e-3 vs 1e-2) end with
    every layer's median width within 2x of each other (docs/defaults.md).  A smaller
    ``kl_beta`` (the seed's scaled ELBO, e.g. 1e-6) shrinks the KL term, the only part of the
    loss that widens ``q`` (its entropy) and pulls it towards the prior, against the data fit,
    which only narrows it: the widths then drift slowly down from ``init_scale`` and end near it
    (measured: 1e-3 -> 0.0012, 1e-2 -> 0.0084), so the epistemic maps report ``init_scale``, not
    the data (an over-confident, "cold" posterior; ``kl_beta -> 0`` is maximum likelihood with
    weight noise).

    The guide's scale parameters ``rho`` (``sigma = softplus(rho)``) have their own Adam group
    with learning rate ``scale_lr`` (`SCALE_LR`), and each step averages ``num_particles``
    weight draws (`NUM_PARTICLES`, two: twice the cost of one) so that the widths are learned
    within the budget instead of staying near ``init_scale``.  Every epoch record holds ``sigma_median``,
    the median ``sigma`` of each weight site (``history["init"]`` the initial ones;
    `cosmiq_pyro.evaluation.plots.plot_sigma_history` draws them).

    Parameters
    ----------
    model : UNet2SigmoidVI
    train, val, epochs, batch_size, lr, seed, progress, checkpoint, resume, save_after,
    phase0_epochs, lr_decay_factor, lr_decay_patience, device, on_epoch, calibrate
        As for `fit_deterministic`.
    kl_beta : float, optional
        Weight ``beta`` of the KL term (> 0).  Default: ``1 / (H * W)`` of the first training
        image, the exact per-pixel ELBO.
    num_particles : int
        Monte Carlo draws of ``w`` per step (default `NUM_PARTICLES`; 1 halves the time of a step,
        and leaves weakly determined widths near ``init_scale``).
    init_scale : float
        Initial posterior standard deviation of every weight.
    init_from : str, UNet2Sigmoid, FitResult or state dict, optional
        Start the posterior means (and copy the norm layers) from these weights: a published
        model name or checkpoint path (`models.registry.load_model`, e.g. ``"ACS-WFC"``: deepCR's
        published weights), a trained deterministic twin, a fitted Bayesian model (its posterior
        means) or a state dict.  Default: the prior's centre when the prior is centred on given
        weights (`UNet2SigmoidVI.from_deepcr`), else a fresh Kaiming-initialised `UNet2Sigmoid`
        drawn with ``seed``.  Every weight site must be present.
    guide : AutoNormal, optional
        Continue training this guide (e.g. from `load`) instead of making a new one.  With
        ``resume`` and an existing checkpoint, the checkpoint's guide is used and ``guide`` and
        ``init_from`` are ignored.
    val_samples : int
        Posterior samples averaged for the validation probabilities.
    scale_lr : float
        Adam learning rate of the guide's scale parameters (> 0; ``lr`` = one learning rate).

    Returns
    -------
    FitResult
        ``.model`` (eval mode), ``.guide``, ``.history``.  ``epochs=0`` returns the initialised
        guide untrained.
    """
    if not isinstance(model, UNet2SigmoidVI):
        raise TypeError(f"fit_svi fits a UNet2SigmoidVI, got {type(model).__name__} "
                        "(use fit_deterministic for UNet2Sigmoid)")
    if kl_beta is not None:
        kl_beta = check_float(kl_beta, "kl_beta", positive=True)
    num_particles = check_int(num_particles, "num_particles", minimum=1)
    init_scale = check_float(init_scale, "init_scale", positive=True)
    scale_lr = check_float(scale_lr, "scale_lr", positive=True)
    lr = check_float(lr, "lr", positive=True)
    seed = check_seed(seed)
    device = resolve_device(device)
    model.to(device)
    train_ds = _non_empty(as_dataset(train, name="train"), "train")
    if kl_beta is None:  # the exact negative ELBO per pixel
        kl_beta = 1.0 / train_ds[0][0].numel()  # item image: (1, H, W)
    run = TrainingRun(checkpoint, resume=resume, save_after=save_after)
    previous = run.resume_into(model)
    model.to(device)
    if previous is not None:
        guide = previous.guide
    elif guide is None:
        guide = _initial_guide(model, init_from, init_scale, seed)
    guide.to(device)
    loss_fn = svi_loss(model, guide, kl_beta / len(train_ds), num_particles)

    def val_probs(x):
        return sample_probs(model, guide, x, val_samples).mean(0)

    locs, scales = guide_param_groups(guide)
    groups = [{"params": list(model.parameters()) + locs}, {"params": scales, "lr_factor": scale_lr / lr}]

    def widths() -> dict:
        return {"sigma_median": {site: float(s.median()) for site, s in guide_scales(guide, model.weight_sites).items()}}

    return _train(model, guide, groups, loss_fn, val_probs, train_ds, val, run, epochs=epochs,
                  batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                  phase0_epochs=phase0_epochs, lr_decay_factor=lr_decay_factor,
                  lr_decay_patience=lr_decay_patience, device=device, on_epoch=on_epoch,
                  calibrate=calibrate, epoch_stats=widths)


def _non_empty(dataset, name: str):
    """``dataset``, or a ValueError: an empty training set has no loss (and no KL scale), an
    empty validation set would report val_loss 0.0 and keep its first epoch as the best."""
    if len(dataset) == 0:
        raise ValueError(f"{name}: the dataset is empty (0 items); give at least one labelled frame"
                         + ("" if name == "train" else ", or val=None to train without validation"))
    return dataset


def _initial_guide(model: UNet2SigmoidVI, init_from, init_scale: float, seed: int):
    if init_from is None and model.prior_centre() is not None:
        return make_guide(model, model.prior_centre(), init_scale)
    if isinstance(init_from, (str, os.PathLike)):
        init_from = load_model(init_from)
    if isinstance(init_from, FitResult):  # a fitted Bayesian model: its posterior means
        net = init_from.model
        init_from = {**net.state_dict(), **({} if init_from.guide is None else
                                            guide_locs(init_from.guide, net.weight_sites))}
    if init_from is None:
        with seeded(seed):
            init_from = UNet2Sigmoid(**{k: v for k, v in model.config.items() if k in
                                        ("n_channels", "n_classes", "hidden", "norm")})
    else:
        copy_point_estimates(model, init_from)
    return make_guide(model, weight_state(init_from, model.weight_sites), init_scale)


def _set_phase(model: nn.Module, phase: int) -> None:
    """Train mode; in phase 1 the norm layers use (and stop updating) running statistics."""
    model.train()
    if phase == 1:
        for layer in model.modules():
            if isinstance(layer, _NORM_LAYERS):
                layer.eval()


def _train(model, guide, groups, loss_fn: Callable, val_probs: Callable, train, val, run: TrainingRun, *,
           epochs, batch_size, lr, seed, progress, phase0_epochs, lr_decay_factor, lr_decay_patience,
           device, on_epoch=None, calibrate=False, epoch_stats=None) -> FitResult:
    """The one data loop behind both fit functions; ``run`` owns history, best weights, files.

    ``groups``: Adam parameter groups ``{"params": [...], "lr_factor": f}`` (learning rate
    ``f * lr``, default f = 1).  ``epoch_stats() -> dict`` is merged into every epoch record (and
    recorded once before training as ``history["init"]``).  ``calibrate``: fit the temperature
    on ``val`` at the end (`temperature.calibrate`) and write it into the checkpoint.
    """
    epochs = check_int(epochs, "epochs", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_float(lr, "lr", positive=True)
    seed = check_seed(seed)
    if phase0_epochs is not None:
        phase0_epochs = check_int(phase0_epochs, "phase0_epochs", minimum=0)
        if phase0_epochs > epochs:
            raise ValueError(f"phase0_epochs must be an int in [0, epochs={epochs}], got {phase0_epochs!r}")
    train_ds = _non_empty(as_dataset(train, name="train"), "train")
    val_ds = None if val is None else _non_empty(as_dataset(val, name="val"), "val")
    history = run.begin(model, guide)
    start = run.start_epoch
    if epoch_stats is not None and start == 0:
        history["init"] = epoch_stats()
    interrupted = False
    phase_of = (lambda e: 0) if phase0_epochs is None else (lambda e: 0 if e < phase0_epochs else 1)

    with seeded(seed + start, device):  # a resumed run does not replay the first run's shuffles
        loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed + start))
        optimizer = scheduler = None
        bar = tqdm(range(start, epochs), desc="epochs", unit="epoch", disable=not progress)
        try:
            for epoch in bar:
                phase = phase_of(epoch)
                if optimizer is None or (phase == 1 and phase_of(epoch - 1) == 0):
                    base = lr * (PHASE1_LR_FACTOR if phase else 1.0)
                    optimizer = torch.optim.Adam([{"params": g["params"], "lr": base * g.get("lr_factor", 1.0)}
                                                  for g in groups])
                    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(
                        optimizer, factor=lr_decay_factor, patience=lr_decay_patience)
                        if lr_decay_factor and val_ds is not None else None)
                started = time.perf_counter()
                _set_phase(model, phase)
                losses = []
                for batch in tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                                  disable=not progress, unit="batch"):
                    # (x, y, ignore) or, with per-pixel likelihood weights, (x, y, ignore, weight)
                    loss = loss_fn(*(t.to(device) for t in batch))
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch + 1}; "
                                                 "lower lr or check the inputs for extreme values")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                history["loss"].extend(losses)
                record = {"epoch": epoch + 1, "phase": phase, "train_loss": sum(losses) / len(losses),
                          "lr": optimizer.param_groups[0]["lr"]}
                if val_ds is not None:
                    record.update(_validate(model, val_probs, val_ds, batch_size, device))
                    if not math.isfinite(record["val_loss"]):  # validation pixels are finite (checked)
                        raise FloatingPointError(f"validation loss became {record['val_loss']} at epoch "
                                                 f"{epoch + 1}: the weights diverged; lower lr")
                    if scheduler is not None:
                        scheduler.step(record["val_loss"])
                if epoch_stats is not None:
                    record.update(epoch_stats())
                record["seconds"] = time.perf_counter() - started
                run.end_epoch(model, guide, history, record, has_val=val_ds is not None)
                if on_epoch is not None:
                    on_epoch(record, model, guide)
                bar.set_postfix({k: f"{record[k]:.4g}" for k in ("train_loss", "val_loss") if k in record})
        except KeyboardInterrupt:
            interrupted = True
            warnings.warn(f"training interrupted after {len(history['epochs'])} complete epoch(s); "
                          "returning the best state so far", RuntimeWarning, stacklevel=3)
    result = run.finish(model, guide, history, interrupted=interrupted)
    if calibrate and val_ds is not None and history["epochs"]:
        try:
            calibrate_temperature(result, val_ds, seed=seed)
        except ValueError as err:
            warnings.warn(f"no temperature fitted (kept at 1): {err}", RuntimeWarning, stacklevel=3)
        history["temperature"] = result.temperature
        if run.path is not None:
            save(run.path, result)
    return result


def _validate(model, val_probs, val_ds, batch_size, device) -> dict:
    """Validation BCE of the (mean) probabilities, and TPR/FPR (%) at threshold 0.5."""
    model.eval()
    bce_sum, n_valid = 0.0, 0
    tp = fp = positives = negatives = 0
    with torch.no_grad():
        for x, y, ignore, *_ in DataLoader(val_ds, batch_size=batch_size):  # weights (if any) unused
            x, y, ignore = x.to(device), y.to(device), ignore.to(device)
            p = val_probs(x).clamp(1e-7, 1 - 1e-7)
            valid = ignore < 0.5
            truth = (y > 0.5) & valid
            bce = -(truth * p.log() + (~truth) * (1 - p).log())
            bce_sum += bce[valid].sum().item()
            n_valid += int(valid.sum())
            detected = (p > 0.5) & valid
            tp += int((detected & truth).sum())
            fp += int((detected & ~truth).sum())
            positives += int(truth.sum())
            negatives += int((valid & ~truth).sum())
    return {"val_loss": bce_sum / max(n_valid, 1),
            "val_tpr": 100.0 * tp / positives if positives else float("nan"),
            "val_fpr": 100.0 * fp / negatives if negatives else float("nan")}
