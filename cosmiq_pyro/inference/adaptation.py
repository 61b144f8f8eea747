"""`adapt`: a Bayesian CR model for a camera, made with the ACS-WFC-VI recipe, in one checkpoint.

The recipe (`ACS_WFC_VI`; README "The shipped model", ``benchmarks/train_published.py``):

* the starting model's plain net (deepCR's published weights, or any checkpoint: a Bayesian
  one gives its posterior means) becomes `UNet2SigmoidVI` with the prior centred there,
  ``w ~ N(w_start, prior_scale^2)`` (`models.priors.CentredNormalPrior`), posterior means
  starting at ``w_start``, norm layers copied and frozen (``phase0_epochs = 0``);
* the guide's scales, from ``init_scale``, train with their own learning rate ``scale_lr``;
* the objective is the exact negative ELBO per pixel: ``kl_beta = 1 / pixels per frame``
  (``star_core_weight``, None in the recipe, makes the cores of bright stars in the simulated
  training frames count more in the likelihood: `data.simulate.star_core_weights`; DECam-VI
  was continued with 30);
* the logit temperature is fitted on held-out validation frames after training
  (`temperature.calibrate`, ``calibration_draws`` posterior draws); simulated frames made at
  ``cr_rate_multiplier`` times the real CR rate give the model the prior-shift correction back
  to the real rate (`prior_shift`, ``Delta = -log cr_rate_multiplier``; not for the user's own
  frames, whose CR prevalence the recipe does not know); the novelty model is fitted on
  ``n_novelty`` further frames, its threshold on ``n_novelty_cal`` calibration frames
  (`novelty.fit_novelty`, the frames' ignored pixels left out; `recipe_novelty`).

Every value is passed explicitly to `fit.fit_svi`, `temperature.calibrate` and
`novelty.fit_novelty`, so a change of their defaults does not change a model made by `adapt`.
The data are simulated frames of the camera (`data.camera_sets`), the user's CR-free images plus
dark frames (deepCR's ``mode='simulate'`` data), or both.  A starting model that takes
standardised frames (deepCR's ``WFC3-UVIS``) passes that input transform on: the training
frames go through it and the checkpoint carries it.

Runs are resumable in chunks (``chunk_epochs``): the run's state lives in a work directory
(``<out stem>.adapt/`` beside ``out``: ``run.pth``, `inference.runner.TrainingRun`'s
checkpoint, and ``adapt.json``, the recipe and the chunks run); after every chunk ``out`` is
written complete -- the best validation epoch, its temperature, novelty model and model card
(`models.card`) -- and the work directory is removed when the recipe's epochs are done.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

from ..data.camera_sets import (Camera, concat, dark_mix_sets, frame_width, image_files, resolve_camera,
                                simulated_images, simulated_sets)
from ..data.input_transform import TransformedDataset
from ..io.atomic import check_writable_directory, write_bytes_atomic
from ..io.digest import file_sha256
from ..models.bayesian import UNet2SigmoidVI
from ..models.card import CARD_VERSION, machine, utc_now, versions
from ..models.guides import guide_locs
from ..models.priors import CentredNormalPrior
from ..models.registry import load_model, save
from ..models.results import FitResult
from ..models.unet import UNet2Sigmoid
from ..utils.checks import check_int
from .fit import fit_svi
from .novelty import fit_novelty
from .prior_shift import logit_shift, with_prior_shift
from .temperature import calibrate

__all__ = ["adapt", "ACS_WFC_VI", "CAMERA_KEYS", "NOVELTY_KEYS", "resolve_recipe", "plain_net", "recipe_novelty",
           "novelty_data", "novelty_frame_options"]

#: The recipe of the published ``ACS-WFC-VI`` (unchanged since it was trained), every value that
#: the data, `fit_svi`, `calibrate` and `fit_novelty` take.  The keys after ``calibration_draws``
#: were implicit defaults when ACS-WFC-VI was trained (these are the values it used); the novelty
#: keys are adapt's own, changed in issue 22 (``n_novelty_cal``, ``novelty_false_alarm``; the
#: shipped models' novelty models were refitted with them, `novelty_refit.refit_novelty`).
ACS_WFC_VI = {
    "name": "ACS-WFC-VI",
    "base": "ACS-WFC",            # deepCR's published mask weights (prior centre, initial means)
    "prior_scale": 0.1,           # models.bayesian.PRETRAINED_PRIOR_SCALE
    "size": 256,
    "fields": ["EX", "GC", "GAL"],
    "filters": ["F435W", "F606W", "F814W"],
    "exptime_s": [100, 1200],
    "label_rule": "drizcr",
    "cr_rate_multiplier": 1.0,    # the real CR rate (ground-based specs record a larger training factor)
    "n_train": 512,
    "n_val": 32,
    "train_seed": 13,             # hashed frame seeds (< 2**32), disjoint from held-out sets
    "val_seed": 14,
    "fit_seed": 0,
    "epochs": 6,
    "batch_size": 8,
    "lr": 2.5e-3,                 # means; phase 1 runs at lr / 2.5 = 1e-3
    "scale_lr": 0.125,            # scales; phase 1 runs at 0.125 / 2.5 = 0.05 (fit.SCALE_LR)
    "phase0_epochs": 0,           # batch norm frozen at the starting model's statistics throughout
    "init_scale": 1e-2,
    "kl_beta": 1.0 / 256 ** 2,    # exact negative ELBO per pixel (None: 1 / size**2)
    "val_samples": 4,
    "calibration_draws": 8,
    "num_particles": 1,
    "lr_decay_factor": 0.1,
    "lr_decay_patience": 4,
    "save_after": 0,
    "calibration_max_pixels": 2_000_000,
    "n_novelty": 192,             # novelty fit frames (the feature Gaussians, the noise reference)
    # novelty calibration frames and the threshold's nominal false-alarm rate: a threshold at the
    # 97.5th percentile of 768 frames flags 2.6 % of in-distribution frames on average (95 % of
    # calibration sets: <= 3.7 %), so a 500-frame check's 95 % upper end stays <= 7 % with 98 %
    # chance; the 95th percentile of 192 frames (the values until issue 22) fails that check 61 %
    # of the time (evaluation.false_alarms.threshold_design; docs/novelty_cameras.md)
    "n_novelty_cal": 768,
    "novelty_fit_seed": 15,
    "novelty_cal_seed": 16,
    "novelty_shrinkage": 0.1,
    "novelty_false_alarm": 0.025,
    # novelty frames at the real CR rate (what a user's frames have), not the training rate: with
    # DECam-VI's x50 training frames, 67 of 500 real-rate DECam frames (13 %) were flagged at a
    # nominal 2.5 %; with x1 novelty frames 15 of 500 (3.0 %) (docs/novelty_cameras.md)
    "novelty_cr_rate_multiplier": 1.0,
    "dark_n_mask": 1,             # user data (deepCR's 'simulate'): darks per image, validation share
    "dark_f_val": 0.1,
    # likelihood weight on the cores of bright stars in the simulated training frames
    # (data.simulate.star_core_weights; both classes alike); None: the exact ELBO.  Added in
    # issue 22 for DECam-VI, whose unweighted fit was over-confident on star cores
    "star_core_weight": None,
}
#: Recipe keys that describe the camera's frames: for a camera other than ACS-WFC they default to
#: None (the camera spec's values), not to ACS-WFC-VI's.
CAMERA_KEYS = ("fields", "filters", "exptime_s", "label_rule", "cr_rate_multiplier")
#: Recipe keys of the novelty model (what `novelty_refit.refit_novelty` may change after training).
NOVELTY_KEYS = ("n_novelty", "n_novelty_cal", "novelty_fit_seed", "novelty_cal_seed", "novelty_shrinkage",
                "novelty_false_alarm", "novelty_cr_rate_multiplier")
_FIT_KEYS = ("batch_size", "lr", "scale_lr", "kl_beta", "num_particles", "init_scale", "phase0_epochs",
             "val_samples", "lr_decay_factor", "lr_decay_patience", "save_after")


def resolve_recipe(camera: Camera, start: str, out: Path, recipe: dict | None, **values) -> dict:
    """The full recipe of one `adapt` call: `ACS_WFC_VI` with the camera's frame keys, ``recipe``
    (overrides) and the keyword values that are not None; ``kl_beta=None`` becomes exact."""
    full = dict(ACS_WFC_VI, name=out.stem, base=start)
    if camera.name != "ACS-WFC":
        full.update({k: None for k in CAMERA_KEYS})
    recipe = {} if recipe is None else dict(recipe)
    unknown = sorted(set(recipe) - set(ACS_WFC_VI) - {"kl_beta"})
    if unknown:
        raise ValueError(f"recipe: unknown key(s) {unknown}; known: {sorted(ACS_WFC_VI)}")
    fixed = sorted(set(recipe) & {"name", "base"})
    if fixed:
        raise ValueError(f"recipe: {fixed} cannot be overridden (name is out's stem, base the start model)")
    full.update(recipe)
    full.update({k: v for k, v in values.items() if v is not None})
    if "kl_beta" not in recipe and values.get("size") not in (None, ACS_WFC_VI["size"]):
        full["kl_beta"] = None  # the exact ELBO follows the frame size
    for key in ("size", "epochs", "n_val", "batch_size", "n_novelty", "n_novelty_cal"):
        full[key] = check_int(full[key], key, minimum=1)
    full["n_train"] = check_int(full["n_train"], "n_train", minimum=0)
    if full["kl_beta"] is None:
        full["kl_beta"] = 1.0 / full["size"] ** 2
    if full["cr_rate_multiplier"] is None:  # the spec's training factor on its real CR rate
        simulation = camera.spec.simulation
        full["cr_rate_multiplier"] = 1.0 if simulation is None else float(simulation.cr_rate_multiplier)
    return json.loads(json.dumps(full))  # plain JSON types (tuples -> lists), as stored


def plain_net(result: FitResult) -> UNet2Sigmoid:
    """The deterministic net of a loaded model: itself, or a Bayesian model's posterior means."""
    if result.guide is None:
        return result.model
    vi = result.model
    net = UNet2Sigmoid(n_channels=vi.n_channels, n_classes=vi.n_classes, hidden=vi.hidden, norm=vi.norm)
    state = {k: v for k, v in vi.state_dict().items() if k in net.state_dict()}
    net.load_state_dict({**state, **guide_locs(result.guide, vi.weight_sites)})
    return net.eval()


def _prior_source(start: str, result: FitResult) -> str:
    """What the prior is centred on: ``deepCR:<name>`` for deepCR's published weights (the name
    `UNet2SigmoidVI.from_deepcr` records), else the start as given."""
    weights = result.weights_file
    if weights is not None and "learned_models" in Path(weights).parts:
        return f"deepCR:{Path(weights).stem}"
    return start


def adapt(instrument, start, out, *, images=None, darks=None, n_frames: int | None = None,
          size: int | None = None, epochs: int | None = None, chunk_epochs: int | None = None,
          recipe: dict | None = None, work=None, overwrite: bool = False, device=None,
          progress: bool = True, on_epoch=None) -> FitResult:
    """Make a Bayesian CR model for a camera with the ACS-WFC-VI recipe; write it to ``out``.

    Parameters
    ----------
    instrument : str, os.PathLike or Instrument
        A shipped camera spec's name (``"ACS-WFC"``, ``"WFC3-UVIS"``, ``"DECam"``) or the path of a
        camera spec (``.toml``; `cosmiq_pyro.instruments`).
    start : str or os.PathLike
        The starting model: a published name (``"ACS-WFC"``, a deepCR model such as
        ``"WFC3-UVIS"`` or ``"decam"``) or a checkpoint (a Bayesian one gives its posterior means).
        The prior is centred on its weights.
    out : str or os.PathLike
        The checkpoint to write (``.pth``): best weights, guide, history, temperature, novelty
        model, input transform and model card, in one ``torch.load(weights_only=True)``-safe file.
    images, darks : str or os.PathLike, optional
        Directories of ``.npy`` files: CR-free images in electrons ((W, W) or [image, ignore]) and
        dark frames ([CR charge, CR mask]) -- deepCR's ``mode='simulate'`` data.  Both or neither.
    n_frames : int, optional
        Simulated training frames (recipe ``n_train``, 512).  With ``images`` the default is 0
        (the user's frames only); give it to train on both.
    size : int, optional
        Side of the simulated frames in px (recipe 256; with ``images``, their width).
    epochs : int, optional
        Total epochs (recipe 6).
    chunk_epochs : int, optional
        Run at most this many epochs in this call (resumable: call again to continue).
    recipe : dict, optional
        Overrides of `ACS_WFC_VI` values (e.g. ``{"n_val": 8, "batch_size": 4}``).
    work : str or os.PathLike, optional
        The run's work directory (default ``<out stem>.adapt`` beside ``out``); kept when given.
    overwrite : bool
        Replace an ``out`` that was made with another recipe (else a FileExistsError).
    device : str, optional
        Default CUDA when available.
    progress : bool
        tqdm bars (epochs with ETA, batches, novelty frames) and one line per chunk.
    on_epoch : callable, optional
        Passed to `fit_svi` (``on_epoch(record, model, guide)``).

    Returns
    -------
    FitResult
        The model as written to ``out`` (``.card`` its model card); ``interrupted`` after Ctrl-C
        (then ``out`` is not written; the work directory keeps the best epoch).
    """
    camera = resolve_camera(instrument)
    out = Path(out)
    if out.suffix != ".pth":
        raise ValueError(f"out must name a .pth file, got {str(out)!r}")
    start_text = os.fspath(start)
    started = load_model(start)
    if (images is None) != (darks is None):
        raise ValueError("images and darks go together (CR-free images plus the dark frames whose CRs they get)")
    user = None
    if images is not None:
        user = (image_files(images, "images"), image_files(darks, "darks"))
        n_frames = 0 if n_frames is None else n_frames
        size = frame_width(user[0][0]) if size is None else size
    full = resolve_recipe(camera, start_text, out, recipe, n_train=n_frames, size=size, epochs=epochs)
    if chunk_epochs is not None:
        chunk_epochs = check_int(chunk_epochs, "chunk_epochs", minimum=1)
    transform = started.input_transform
    train, val, user_parts = _datasets(camera, full, user, transform)
    keep_work = work is not None
    work = Path(work) if keep_work else out.parent / f"{out.stem}.adapt"
    check_writable_directory(out.parent, "directory of out")
    state = _work_state(work, out, full, overwrite)
    if state is None:  # out is complete with this recipe
        return load_model(out)
    _write_state(work, state)
    done = len(load_model(work / "run.pth").history.get("epochs", [])) if (work / "run.pth").exists() else 0
    target = full["epochs"] if chunk_epochs is None else min(full["epochs"], done + chunk_epochs)

    net = plain_net(started)
    model = UNet2SigmoidVI.from_net(net, prior=CentredNormalPrior(net, full["prior_scale"],
                                                                  source=_prior_source(start_text, started)))
    t0 = time.perf_counter()
    result = fit_svi(model, train, val, epochs=target, init_from=None, guide=None, seed=full["fit_seed"],
                     progress=progress, checkpoint=work / "run.pth", resume=True, device=device,
                     on_epoch=on_epoch, calibrate=False, **{k: full[k] for k in _FIT_KEYS})
    if result.interrupted:
        return result
    try:
        calibrate(result, val, draws=full["calibration_draws"], seed=full["fit_seed"],
                  max_pixels=full["calibration_max_pixels"])
    except ValueError as err:
        warnings.warn(f"no temperature fitted (kept at 1): {err}", RuntimeWarning, stacklevel=2)
    result.history["temperature"] = result.temperature
    if user is None and full["cr_rate_multiplier"] != 1.0:  # back to the real CR rate at prediction
        with_prior_shift(result, full["cr_rate_multiplier"])
    save(work / "run.pth", result)
    result.model.cpu(), result.guide.cpu()  # the novelty features are computed on the CPU
    result.input_transform = transform
    t1 = time.perf_counter()
    result.novelty = recipe_novelty(result, camera, full, user_parts, progress)
    seconds = time.perf_counter() - t0
    state["chunks"].append({"epochs": [done + 1, target], "seconds": round(seconds, 1),
                            "novelty_seconds": round(time.perf_counter() - t1, 1), "device": str(device or "default"),
                            "machine": machine(), "finished_utc": utc_now()})
    result.card = _card(full, camera, start_text, started, user, result, state["chunks"])
    save(out, result)
    result.weights_file = out
    if target >= full["epochs"] and not keep_work:
        shutil.rmtree(work, ignore_errors=True)  # out holds everything: best weights, history, card
    else:
        _write_state(work, state)
    if progress:
        per_epoch = seconds / max(target - done, 1)
        left = full["epochs"] - target
        print(f"adapt: {target} of {full['epochs']} epochs done ({seconds:.0f} s this call); wrote {out}"
              + (f"; about {left * per_epoch / 60:.1f} min of training left" if left else ""), flush=True)
    return result


def _datasets(camera: Camera, full: dict, user, transform):
    """Training and validation Datasets, and the user's (train, val) parts (or None)."""
    sim_train = sim_val = user_parts = None
    if user is not None:
        user_parts = dark_mix_sets(*user, seed=full["train_seed"], n_mask=full["dark_n_mask"], f_val=full["dark_f_val"])
        if full["size"] != user_parts[0].width:
            raise ValueError(f"size={full['size']} but the images are {user_parts[0].width} px wide; simulated "
                             "and own frames must have the same size (leave size out)")
        if not full["n_train"] and len(user_parts[1]) < 2:
            raise ValueError(f"images: the validation part (dark_f_val={full['dark_f_val']}) holds "
                             f"{len(user_parts[1])} image(s); the temperature and the novelty model need at least 2: "
                             "give more images or add simulated frames (n_frames)")
    if full["n_train"]:
        sim_train, sim_val = simulated_sets(camera, n_train=full["n_train"], n_val=full["n_val"],
                                            train_seed=full["train_seed"], val_seed=full["val_seed"],
                                            star_core_weight=full["star_core_weight"],
                                            **{k: full[k] for k in ("size", *CAMERA_KEYS)})
        for key in CAMERA_KEYS:  # record the camera's values the frames were made with
            value = getattr(sim_train, key, full[key])
            full[key] = json.loads(json.dumps(value)) if full[key] is None else full[key]
    train = concat(sim_train, None if user_parts is None else user_parts[0])
    val = concat(sim_val, None if user_parts is None else user_parts[1])
    if transform is not None:
        train, val = TransformedDataset(train, transform), TransformedDataset(val, transform)
    return train, val, user_parts


def _work_state(work: Path, out: Path, full: dict, overwrite: bool) -> dict | None:
    """The run's state file (``adapt.json``), after checking the recipe; None when ``out`` is
    already complete with this recipe.  Creates ``work`` (from ``out`` to continue it)."""
    state_file = work / "adapt.json"
    if (work / "run.pth").exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        _same_recipe(state["recipe"], full, f"{work / 'run.pth'} was trained", "use another work directory")
        state["recipe"] = full
        return state
    card = _card_of(out)
    if card is not None and card.get("recipe") is not None and not overwrite:
        _same_recipe(card["recipe"], full, f"{out} was made", "pass overwrite=True (--overwrite) to replace it")
        if card["training"]["epochs_done"] >= full["epochs"]:
            return None
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, work / "run.pth")  # continue it: its best weights and history
        return {"recipe": full, "chunks": card["training"].get("chunks", [])}
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} exists and is no model adapt made; pass overwrite=True (--overwrite) "
                              "to replace it")
    if (work / "run.pth").exists():
        raise FileExistsError(f"work directory {str(work)!r} holds a run.pth without adapt.json; remove it")
    work.mkdir(parents=True, exist_ok=True)
    return {"recipe": full, "chunks": []}


def _same_recipe(saved: dict, full: dict, what: str, hint: str) -> None:
    diff = sorted(k for k in set(saved) | set(full) if k != "epochs" and saved.get(k) != full.get(k))
    if diff:
        raise ValueError(f"{what} with another recipe (differs in {diff}); {hint}")


def _card_of(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return load_model(path).card
    except ValueError:
        return None


def _write_state(work: Path, state: dict) -> None:
    write_bytes_atomic(work / "adapt.json", (json.dumps(state, indent=1) + "\n").encode())


def novelty_frame_options(full: dict) -> dict:
    """`simulated_images` keywords of a recipe's novelty frames: its frame keys, at the CR rate
    ``novelty_cr_rate_multiplier`` (the real rate) rather than the training rate."""
    return {**{k: full[k] for k in ("size", *CAMERA_KEYS)}, "cr_rate_multiplier": full["novelty_cr_rate_multiplier"]}


def recipe_novelty(result: FitResult, camera: Camera, full: dict, user_parts=None, progress: bool = False) -> dict:
    """The novelty model of a recipe, as a state dict: fitted on ``n_novelty`` simulated frames
    of the camera at the real CR rate (seed ``novelty_fit_seed``, `novelty_frame_options`)
    and/or the user's training frames, its threshold on
    ``n_novelty_cal`` held-out ones (seed ``novelty_cal_seed``; the validation part for the
    user's); every frame's ignored pixels left out, as `predict` leaves them out."""
    fit, cal, classes, fit_ignore, cal_ignore = [], [], [], [], []
    if progress:
        print("adapt: fitting the novelty model", flush=True)
    if full["n_train"]:
        options = novelty_frame_options(full)
        fit, classes, fit_ignore = simulated_images(camera, full["n_novelty"], full["novelty_fit_seed"], progress,
                                                    **options)
        cal, _, cal_ignore = simulated_images(camera, full["n_novelty_cal"], full["novelty_cal_seed"], progress,
                                              **options)
    if user_parts is not None:
        for part, images, ignores in zip(user_parts, (fit, cal), (fit_ignore, cal_ignore)):
            images.extend(part[i][0][0].numpy() for i in range(len(part)))
            ignores.extend(part[i][2][0].numpy() != 0 for i in range(len(part)))
        classes += ["own"] * len(user_parts[0])
    if classes and min(classes.count(c) for c in set(classes)) < 2:
        classes = None  # a class Gaussian needs two frames at least: one Gaussian for all
    return fit_novelty(result, fit, cal, classes=classes, fit_ignore=fit_ignore, calibration_ignore=cal_ignore,
                       read_noise_e=camera.read_noise_e, shrinkage=full["novelty_shrinkage"],
                       false_alarm=full["novelty_false_alarm"]).state_dict()


def novelty_data(full: dict) -> dict:
    """The card's record of the novelty frames (``data.novelty``)."""
    return {"n_fit": full["n_novelty"], "fit_seed": full["novelty_fit_seed"], "n_cal": full["n_novelty_cal"],
            "cal_seed": full["novelty_cal_seed"], "false_alarm": full["novelty_false_alarm"],
            "cr_rate_multiplier": full["novelty_cr_rate_multiplier"], "ignored_pixels": "left out"}


def _start_file(weights_file) -> dict:
    """The starting model's file as a card records it: its name and the SHA-256 of its bytes (a
    path would name the training machine's directories)."""
    if weights_file is None:
        return {"weights_file": None, "weights_file_sha256": None}
    return {"weights_file": Path(weights_file).name, "weights_file_sha256": file_sha256(weights_file)}


def _card(full: dict, camera: Camera, start: str, started: FitResult, user, result: FitResult, chunks) -> dict:
    history = result.history
    epochs = history.get("epochs", [])
    novelty = result.novelty or {}
    data = {"simulated": None, "user": None,
            "novelty": novelty_data(full)}
    if full["n_train"]:
        data["simulated"] = {"n_train": full["n_train"], "n_val": full["n_val"], "size": full["size"],
                             "train_seed": full["train_seed"], "val_seed": full["val_seed"],
                             **{k: full[k] for k in CAMERA_KEYS}}
    if user is not None:
        data["user"] = {"images": str(Path(user[0][0]).parent.resolve()), "n_images": len(user[0]),
                        "darks": str(Path(user[1][0]).parent.resolve()), "n_darks": len(user[1]),
                        "n_mask": full["dark_n_mask"], "f_val": full["dark_f_val"]}
    card = {
        "card_version": CARD_VERSION, "name": full["name"], "made_by": "cosmiq_pyro.adapt",
        "created_utc": utc_now(), "instrument": camera.describe(),
        "start": {"model": start, **_start_file(started.weights_file), "input_transform": started.input_transform},
        "recipe": full, "data": data,
        "training": {"epochs_done": len(epochs), "epochs": full["epochs"], "best_epoch": history.get("best_epoch"),
                     "chunks": chunks, "wall_seconds": round(sum(c["seconds"] for c in chunks), 1)},
        "validation": {k: [e.get(k) for e in epochs] for k in ("val_loss", "val_tpr", "val_fpr")}
        | {"temperature": result.temperature, "prior_logit_shift": logit_shift(result),
           "novelty_threshold": novelty.get("threshold")},
        "versions": versions(), "machine": machine(),
    }
    return json.loads(json.dumps(card))  # plain Python only (str subclasses, tuples: torch.load(weights_only=True))
