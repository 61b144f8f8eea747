"""Novelty: how unlike the training frames an image is, per 64x64 px block and per frame.

A CR mask from a model applied outside its domain is silently wrong, and the mean-field
posterior's epistemic term does not notice (on the frames of benchmarks/novelty_study.py it is
*lower* on both real ground-based frames and on most shifted sets than on held-out simulated
HST frames).  This
module scores an image against what the model was trained on with three cheap statistics,
fitted on training frames and stored as plain tensors (`NoveltyModel.state_dict`):

* **features** -- the network's bottleneck map (the ``2h``-channel output of the ``down`` block,
  ``(B, 2h, H/2, W/2)``), averaged over each block and log-transformed, ``f_b = log(eps +
  mean_block(a))``; the block's squared Mahalanobis distance to the nearest of class-conditional
  Gaussians fitted to the training blocks (one per field type of the simulated training frames),

  .. math:: d^2_b = \\min_k (f_b - \\mu_k)^\\top \\Sigma_k^{-1} (f_b - \\mu_k),

  with covariances shrunk towards their diagonals, ``Sigma = (1-lam) S + lam diag(S)``
  (Lee et al. 2018; Mukhoti et al. 2021).  `GaussianDensity`.
* **noise deficit** -- per block, the noise measured from second differences against the
  Poisson + read noise its level predicts in electrons (`noise_excess`).  Noise *below* that
  floor is impossible for data in electrons (it means ADU, e-/s or scaled data read as
  electrons); noise above it is also what sources and gradients give, so only the deficit counts.
* **level** -- per block, the log of the median level in electrons (`block_level`), how far it
  lies *above* the training blocks' in units of their spread.  A model whose input is
  standardised cannot see the level in its features (issue 22: the first WFC3-UVIS-VI, adapted
  from deepCR's standardised WFC3-UVIS model, told DECam frames,
  sky of thousands of electrons, from its own with AUROC 0.87 without it, 0.997 with it).  Only
  the excess counts: the distance in both directions also scored the darkest in-distribution
  frames (short blue exposures), which raised the threshold of the maximum over the components
  until that model no longer flagged a real ground-based frame (docs/novelty_cameras.md).
  Novelty models fitted before it have two components and are scored with those.

Each frame score is put on the scale of held-out in-distribution (calibration) frames; the
novelty is the largest of them, and `NoveltyModel` keeps the threshold: the ``1 - false_alarm``
quantile of the calibration frames' novelty (`adapt`'s recipe: 2.5 % of 768 frames, so that a
check on 500 more frames keeps the upper end of its 95 % interval below 7 %;
`cosmiq_pyro.evaluation.false_alarms`).  Ignored pixels are left out of the fit as of the score.
`predict` computes it from the features of its own forward pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..data.input_transform import model_input
from ..models.fused import FusedWeights, fuse_weights, fused_bottleneck
from ..models.guides import guide_locs
from ..models.registry import resolve
from ..utils.tiling import TILE_ALIGN, pad_to_grid, tile_boxes, tile_margin
from .novelty_stats import (BLOCK_PX, READ_NOISE_REF_E, BlockSums, GaussianDensity, auroc, block_level,
                            features_from_block_means, noise_excess)

__all__ = [
    "BLOCK_PX", "READ_NOISE_REF_E", "COMPONENTS", "GaussianDensity",
    "noise_excess", "block_level", "BlockSums", "features_from_block_means", "NoveltyModel", "fit_novelty_model",
    "fit_novelty", "mean_weights", "bottleneck_block_means", "image_novelty", "Novelty", "auroc",
]

#: Names of the candidate scores a `NoveltyModel` combines, in order (a model fitted before issue 22
#: has the first two only).
COMPONENTS = ("features", "noise", "level")


@dataclass
class NoveltyModel:
    """Fitted novelty scores of one network, their calibration and the frame threshold.

    Per block ``b`` the two components are

    * ``features``: ``u_b = log d^2_b`` (Mahalanobis distance of the block's bottleneck features
      to the training blocks, `GaussianDensity`),
    * ``noise``: ``u_b = (mean_r - r_b) / sd_r``, the noise deficit (`noise_excess`,
      standardised with the training blocks' mean and standard deviation),
    * ``level``: ``u_b = (l_b - mean_l) / sd_l``, the block level's excess over the training
      blocks' (`block_level`),

    and a frame's component score is the mean of ``u_b`` over its blocks (features),
    ``(mean_R - median_b r_b) / sd_R`` (noise) or ``(median_b l_b - mean_L) / sd_L`` (level),
    with the training frames' mean and spread of the per-frame medians.
    Each score ``s`` is put on a common scale with held-out in-distribution (calibration)
    frames, ``t = (s - median_cal) / (q95_cal - median_cal)`` (so 1 is the 95th percentile of
    in-distribution frames, or of blocks for the map), and the novelty is the largest ``t`` of
    the components.  ``is_novel`` is ``novelty > threshold``, the threshold the
    ``1 - false_alarm`` quantile of the calibration frames' novelty (`fit_novelty_model`; the
    shipped models: 2.5 %, of 768 frames).

    Attributes
    ----------
    density : GaussianDensity
        Of the block features (``2h``-dimensional).
    noise_block : (float, float)
        Mean and sd of ``r_b`` over the training blocks.
    noise_frame : (float, float)
        Mean and sd of the per-frame median of ``r_b`` over the training frames.
    level_block, level_frame : (float, float) or None
        The same for ``l_b`` (None: a model fitted before the level component; it is scored
        with features and noise only).
    frame_ref, block_ref : dict
        ``component -> (median, q95)`` of the calibration frames' scores / blocks' scores.
    threshold : float
    block_px : int
    read_noise_e : float
        Read noise assumed by `noise_excess`.
    """

    density: GaussianDensity
    noise_block: tuple
    noise_frame: tuple
    frame_ref: dict
    block_ref: dict
    threshold: float
    block_px: int = BLOCK_PX
    read_noise_e: float = READ_NOISE_REF_E
    level_block: tuple | None = None
    level_frame: tuple | None = None

    @property
    def components(self) -> tuple:
        """The components this model combines (`COMPONENTS`, or its first two for an old model)."""
        return COMPONENTS if self.level_frame is not None else COMPONENTS[:2]

    # -- scores -------------------------------------------------------------------------
    def block_components(self, block_means: torch.Tensor, image: np.ndarray, ignore=None) -> dict:
        """``component -> (nby, nbx)`` block scores ``u_b`` from the bottleneck block means
        (C, nby, nbx) and the image (H, W) in electrons.

        ``ignore`` (bool, (H, W)): pixels left out of the noise statistic (`noise_excess`); a
        block more than half of whose pixels are ignored gets NaN in both components (its
        bottleneck mean describes the stand-in values more than the sky)."""
        d2 = self.density.distance2(features_from_block_means(block_means))  # (nby, nbx)
        r = noise_excess(image, self.block_px, self.read_noise_e, ignore=ignore)
        if tuple(d2.shape) != r.shape:
            raise ValueError(f"block_means cover {tuple(d2.shape)} blocks of {self.block_px} px, the image "
                             f"{r.shape} (image shape {np.shape(image)})")
        mean, sd = self.noise_block
        features = torch.log(d2.clamp_min(1e-12)).numpy()
        level = block_level(image, self.block_px, self.read_noise_e, ignore=ignore)
        if ignore is not None and np.any(ignore):
            mostly_ignored = _block_fraction(np.asarray(ignore, dtype=bool), self.block_px) > 0.5
            features = np.where(mostly_ignored, np.nan, features)
            r = np.where(mostly_ignored, np.nan, r)
            level = np.where(mostly_ignored, np.nan, level)
        out = {"features": features, "noise": (mean - r) / sd, "_r": r, "_l": level}
        if self.level_block is not None:
            out["level"] = (level - self.level_block[0]) / self.level_block[1]
        return out

    def frame_components(self, blocks: dict) -> dict:
        """``component -> frame score s`` from `block_components`'s output (NaN blocks left out)."""
        mean, sd = self.noise_frame
        out = {"features": float(np.nanmean(blocks["features"])),
               "noise": float((mean - np.nanmedian(blocks["_r"])) / sd)}
        if self.level_frame is not None:
            out["level"] = float((np.nanmedian(blocks["_l"]) - self.level_frame[0]) / self.level_frame[1])
        return out

    def _scaled(self, scores: dict, ref: dict):
        return {k: (scores[k] - ref[k][0]) / (ref[k][1] - ref[k][0]) for k in self.components}

    def score(self, block_means: torch.Tensor, image: np.ndarray, ignore=None):
        """Frame novelty, its components and the block map; ``ignore`` as for `block_components`.

        Parameters
        ----------
        block_means : Tensor, shape (2h, nby, nbx)
            Block means of the bottleneck map (`BlockSums.means`).
        image : ndarray, shape (H, W)
            The image in electrons.

        Returns
        -------
        novelty : float
            ``max_k t_k`` over the components (1 = the 95th percentile of in-distribution frames).
        components : dict
            ``component -> t_k`` of the frame.
        block_map : ndarray, shape (nby, nbx), float32
            Per block, ``max_k`` of the component's block score on the calibration blocks' scale.
        """
        blocks = self.block_components(block_means, image, ignore)
        if np.isnan(blocks["features"]).all():
            raise ValueError("every novelty block is mostly ignored pixels: no novelty score")
        frame = self._scaled(self.frame_components(blocks), self.frame_ref)
        per_block = self._scaled(blocks, self.block_ref)
        block_map = np.fmax.reduce([per_block[k] for k in self.components]).astype(np.float32)
        return max(frame.values()), frame, block_map

    def too_ignored(self, ignore) -> str | None:
        """Why an image whose ignored pixels are ``ignore`` (bool (H, W) or None) gets no novelty
        score, or None when it gets one: every block more than half ignored (`block_components`)."""
        if ignore is None:
            return None
        ignore = np.asarray(ignore, dtype=bool)
        if not ignore.any() or not (_block_fraction(ignore, self.block_px) > 0.5).all():
            return None
        return (f"every {self.block_px}x{self.block_px} px novelty block of the image is more than half ignored "
                "pixels: no novelty score")

    def too_small(self, shape) -> str | None:
        """Why an image of ``shape`` (H, W) gets no novelty score, or None when it gets one.

        The scores are calibrated on whole ``block_px`` x ``block_px`` blocks; an image smaller
        than one block in either direction has none, so it cannot be compared with the
        training frames.
        """
        height, width = shape
        if height >= self.block_px and width >= self.block_px:
            return None
        return (f"an image of {height}x{width} px is smaller than one novelty block "
                f"({self.block_px}x{self.block_px} px): it gets no novelty score")

    def expand(self, block_map: np.ndarray, shape) -> np.ndarray:
        """A block map (nby, nbx) as an image-shaped float32 map (each block's value on its pixels)."""
        b = self.block_px
        full = np.repeat(np.repeat(block_map, b, axis=0), b, axis=1)
        return np.ascontiguousarray(full[:shape[0], :shape[1]], dtype=np.float32)

    # -- storage ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Tensors and plain Python only (``torch.load(weights_only=True)``-safe)."""
        state = {"version": 1, "mean": self.density.mean.clone(), "whiten": self.density.whiten.clone(),
                 "classes": list(self.density.classes),
                 "noise_block": [float(v) for v in self.noise_block],
                 "noise_frame": [float(v) for v in self.noise_frame],
                 "frame_ref": {k: [float(v) for v in self.frame_ref[k]] for k in self.components},
                 "block_ref": {k: [float(v) for v in self.block_ref[k]] for k in self.components},
                 "threshold": float(self.threshold), "block_px": int(self.block_px),
                 "read_noise_e": float(self.read_noise_e)}
        if self.level_frame is not None:  # version 2: the level component
            state.update(version=2, level_block=[float(v) for v in self.level_block],
                         level_frame=[float(v) for v in self.level_frame])
        return state

    @classmethod
    def from_state_dict(cls, state: dict) -> "NoveltyModel":
        """Rebuild from `state_dict`'s output (ValueError naming a missing entry)."""
        missing = [k for k in ("mean", "whiten", "classes", "noise_block", "noise_frame", "frame_ref", "block_ref",
                               "threshold", "block_px", "read_noise_e") if k not in state]
        if missing:
            raise ValueError(f"novelty state lacks {missing}")
        threshold = state["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ValueError(f"novelty state has threshold {threshold!r}; expected a finite number")
        if state.get("level_frame") is not None and ("level" not in state["frame_ref"] or "level" not in state["block_ref"]):
            raise ValueError("novelty state has a level component but no 'level' entry in frame_ref / block_ref")
        density = GaussianDensity(mean=state["mean"].double(), whiten=state["whiten"].double(),
                                  classes=list(state["classes"]))
        return cls(density=density,
                   noise_block=tuple(state["noise_block"]), noise_frame=tuple(state["noise_frame"]),
                   frame_ref={k: tuple(v) for k, v in state["frame_ref"].items()},
                   block_ref={k: tuple(v) for k, v in state["block_ref"].items()},
                   threshold=float(state["threshold"]), block_px=int(state["block_px"]),
                   read_noise_e=float(state["read_noise_e"]),
                   level_block=None if state.get("level_block") is None else tuple(state["level_block"]),
                   level_frame=None if state.get("level_frame") is None else tuple(state["level_frame"]))


def _block_fraction(mask: np.ndarray, block_px: int) -> np.ndarray:
    """Fraction of True pixels of ``mask`` (H, W) in each block (partial edge blocks: of theirs)."""
    height, width = mask.shape
    pad = np.pad(mask, ((0, -height % block_px), (0, -width % block_px)))
    ones = np.pad(np.ones_like(mask), ((0, -height % block_px), (0, -width % block_px)))
    shape = (pad.shape[0] // block_px, block_px, pad.shape[1] // block_px, block_px)
    return pad.reshape(shape).sum(axis=(1, 3)) / ones.reshape(shape).sum(axis=(1, 3))


def _q95_ref(values) -> tuple:
    values = np.asarray(values, float).ravel()
    values = values[np.isfinite(values)]  # blocks left out (mostly ignored pixels) are NaN
    median, q95 = float(np.median(values)), float(np.quantile(values, 0.95))
    return median, max(q95, median + 1e-6)


def _mean_sd(values) -> tuple:
    """Mean and sample sd (sd floored at 1e-6: a component that never varies cannot divide by 0)."""
    values = np.asarray(values, float).ravel()
    return float(values.mean()), max(float(values.std(ddof=1)), 1e-6)


def _with_ignore(items, what: str) -> list:
    """Items ``(block_means, image)`` or ``(block_means, image, ignore)`` as 3-tuples (ignore None
    when not given)."""
    out = []
    for item in items:
        if len(item) not in (2, 3):
            raise ValueError(f"{what} must be (block_means, image) or (block_means, image, ignore) per frame, "
                             f"got {len(item)} entries")
        out.append((item[0], item[1], item[2] if len(item) == 3 else None))
    return out


def fit_novelty_model(fit_items, calibration_items, *, classes=None, block_px: int = BLOCK_PX,
                read_noise_e: float = READ_NOISE_REF_E, shrinkage: float = 0.1,
                false_alarm: float = 0.05) -> NoveltyModel:
    """Fit the novelty model on training frames and calibrate it on held-out ones.

    Ignored pixels are left out as `predict` leaves them out: from the noise statistic
    (`noise_excess`), and a block more than half of whose pixels are ignored is left out of both
    components (of the Gaussians' fit, the noise reference and the calibration scales).

    Parameters
    ----------
    fit_items, calibration_items : iterable of (block_means, image) or (block_means, image, ignore)
        Per frame: the bottleneck block means (2h, nby, nbx) (`bottleneck_block_means`), the
        image (H, W) in electrons and optionally its ignore mask (bool, (H, W); None: none).  The
        two sets must be disjoint (the calibration frames stand for unseen in-distribution data).
    classes : sequence of str, optional
        A class per fit frame (e.g. the simulator's field type, ``"EX"``, ``"GC"``, ``"GAL"``):
        one Gaussian per class, the distance is to the nearest (`GaussianDensity`).  Default:
        one Gaussian.
    block_px, read_noise_e
        As in `noise_excess`.
    shrinkage : float
        Covariance shrinkage of the feature Gaussian (`GaussianDensity.fit`).
    false_alarm : float
        Fraction of calibration frames above the stored threshold: the threshold is the
        ``1 - false_alarm`` quantile of their novelty (linear interpolation between order
        statistics, `numpy.quantile`).

    Returns
    -------
    NoveltyModel
    """
    fit_items = _with_ignore(fit_items, "fit_items")
    calibration_items = _with_ignore(calibration_items, "calibration_items")
    if len(fit_items) < 2 or len(calibration_items) < 2:
        raise ValueError("fit_novelty_model needs at least two fit and two calibration frames, got "
                         f"{len(fit_items)} and {len(calibration_items)}")
    if not 0.0 < false_alarm < 1.0:
        raise ValueError(f"false_alarm must be in (0, 1), got {false_alarm!r}")
    if classes is not None and len(classes) != len(fit_items):
        raise ValueError(f"classes must name one class per fit frame ({len(fit_items)}), got {len(classes)}")
    feats, r_fit, l_fit, kept_classes = [], [], [], []
    for j, (means, image, ignore) in enumerate(fit_items):
        f = features_from_block_means(means).reshape(-1, means.shape[0])  # (nby * nbx, 2h)
        r = noise_excess(image, block_px, read_noise_e, ignore=ignore)
        level = block_level(image, block_px, read_noise_e, ignore=ignore)
        if ignore is not None and np.any(ignore):
            kept = _block_fraction(np.asarray(ignore, dtype=bool), block_px) <= 0.5
            f = f[torch.from_numpy(kept.ravel())]
            r, level = np.where(kept, r, np.nan), np.where(kept, level, np.nan)
        if len(f) == 0:
            continue  # every block mostly ignored: the frame tells nothing
        feats.append(f)
        r_fit.append(r[np.isfinite(r)])
        l_fit.append(level[np.isfinite(level)])
        kept_classes.append(None if classes is None else classes[j])
    if len(feats) < 2:
        raise ValueError("fit_novelty_model needs at least two fit frames with a block that is not mostly "
                         f"ignored pixels, got {len(feats)}")
    labels = None if classes is None else np.repeat(np.asarray(kept_classes, dtype=str), [len(f) for f in feats])
    density = GaussianDensity.fit(torch.cat(feats), labels, shrinkage)
    model = NoveltyModel(density=density, noise_block=_mean_sd(np.concatenate(r_fit)),
                         noise_frame=_mean_sd([np.median(r) for r in r_fit if r.size]),
                         frame_ref={}, block_ref={}, threshold=float("nan"), block_px=block_px,
                         read_noise_e=read_noise_e, level_block=_mean_sd(np.concatenate(l_fit)),
                         level_frame=_mean_sd([np.median(v) for v in l_fit if v.size]))
    blocks = [model.block_components(m, img, ignore) for m, img, ignore in calibration_items]
    blocks = [b for b in blocks if not np.isnan(b["features"]).all()]  # no score (`score` refuses them)
    if len(blocks) < 2:
        raise ValueError("fit_novelty_model needs at least two calibration frames with a block that is not "
                         f"mostly ignored pixels, got {len(blocks)}")
    frames = [model.frame_components(b) for b in blocks]
    model.frame_ref = {k: _q95_ref([f[k] for f in frames]) for k in COMPONENTS}
    model.block_ref = {k: _q95_ref(np.concatenate([b[k].ravel() for b in blocks])) for k in COMPONENTS}
    novelty = [max(model._scaled(f, model.frame_ref).values()) for f in frames]
    model.threshold = float(np.quantile(novelty, 1.0 - false_alarm))
    return model


def mean_weights(model, guide=None) -> FusedWeights:
    """The fused weights whose bottleneck the novelty features come from: the net's own weights
    (deterministic twin) or the posterior means (VI model; one encoder pass per tile in `predict`).

    ``model``: anything `cosmiq_pyro.models.registry.resolve` accepts (a `FitResult`, a net, a VI
    model with ``guide``).
    """
    net, guide = resolve(model, guide)
    if guide is None:
        return fuse_weights(net)
    return fuse_weights(net, {site: loc.detach()[None] for site, loc in guide_locs(guide, net.weight_sites).items()})


def bottleneck_block_means(weights: FusedWeights, image: np.ndarray, block_px: int = BLOCK_PX) -> torch.Tensor:
    """Block means (2h, nby, nbx) of the bottleneck map of one image (CPU, one pass, no tiles).

    The image (H, W, electrons) is padded symmetrically to a multiple of 4 as `predict` pads it;
    ``weights`` come from `mean_weights`.  `predict` gets the same numbers tile by tile.
    """
    padded = pad_to_grid(np.asarray(image, dtype=np.float32))
    with torch.inference_mode():
        low = fused_bottleneck(weights, torch.from_numpy(padded)[None, None])  # (1, 2h, H/2, W/2)
        sums = BlockSums(padded.shape, low.shape[1], block_px)
        sums.add(low[0], 0, 0)
    return sums.means()


def fit_novelty(model, fit_images, calibration_images, *, classes=None, guide=None, fit_ignore=None,
                calibration_ignore=None, block_px: int = BLOCK_PX, read_noise_e: float = READ_NOISE_REF_E,
                shrinkage: float = 0.1, false_alarm: float = 0.05) -> NoveltyModel:
    """Fit ``model``'s novelty model on training images and set its threshold on held-out ones.

    Parameters
    ----------
    model : FitResult, UNet2Sigmoid or UNet2SigmoidVI
        Its bottleneck (posterior means for a VI model, `mean_weights`) gives the features.
    fit_images, calibration_images : iterable of ndarray (H, W)
        Images in electrons: frames like the model's training data, and disjoint held-out ones
        of the same kind (the threshold keeps ``false_alarm`` of them above it).
    classes : sequence of str, optional
        A class per fit image (e.g. the simulator's field type), one Gaussian per class.
    fit_ignore, calibration_ignore : sequence of ndarray of bool (H, W) or None, optional
        Each image's ignored pixels (a simulated frame's ``ignore``; None: none), left out as
        `predict` leaves them out (`fit_novelty_model`).
    guide, block_px, read_noise_e, shrinkage, false_alarm
        As in `fit_novelty_model`.

    Returns
    -------
    NoveltyModel
        Attach it with ``result.novelty = model`` (a `FitResult`); `save` stores its
        `state_dict` in the checkpoint and `predict` uses it.
    """
    weights = mean_weights(model, guide)
    transform = getattr(model, "input_transform", None)  # features in the net's units, noise in electrons
    items = []
    for images, ignores, what in ((fit_images, fit_ignore, "fit_ignore"),
                                  (calibration_images, calibration_ignore, "calibration_ignore")):
        images = list(images)
        ignores = [None] * len(images) if ignores is None else list(ignores)
        if len(ignores) != len(images):
            raise ValueError(f"{what} must hold one mask (or None) per image ({len(images)}), got {len(ignores)}")
        items.append([(bottleneck_block_means(weights, model_input(img, transform), block_px), img, ign)
                      for img, ign in zip(images, ignores)])
    return fit_novelty_model(*items, classes=classes, block_px=block_px, read_noise_e=read_noise_e,
                             shrinkage=shrinkage, false_alarm=false_alarm)


class Novelty(NamedTuple):
    """One image's novelty: the frame score, the flag at the model's threshold, the map."""

    score: float
    is_novel: bool
    map: np.ndarray


def image_novelty(model, image, *, guide=None, novelty=None, tile: int = 512, ignore=None) -> Novelty:
    """Novelty of one image without the CR maps: the encoder pass only, tile by tile.

    `predict` computes the same numbers inside its own pass; this is for callers that run
    `predict` on pieces of an image (the deepCR facade's patches) and want one score for the whole.

    Parameters
    ----------
    model : FitResult, UNet2Sigmoid or UNet2SigmoidVI
    image : ndarray, shape (H, W)
        Electrons; finite.
    guide : optional
        The guide of a VI model not given as a `FitResult`.
    novelty : NoveltyModel or dict, optional
        Default: ``model.novelty`` (a `FitResult`'s).
    tile : int
        Core tile side (a multiple of 4).
    ignore : array_like of bool, shape (H, W), optional
        Pixels left out of the score as `predict` leaves them out (``Prediction.ignore``); their
        values must be finite (`predict` replaces non-finite ones by the median of the others
        first: pass `predictive.validated_image`'s output to get `predict`'s score).

    Returns
    -------
    Novelty
        ``score`` (float), ``is_novel`` (bool), ``map`` (float32, image shape): as
        `Prediction.novelty`, ``.is_novel``, ``.novelty_map``.

    Raises
    ------
    ValueError
        No novelty model given or carried by ``model``, or an image smaller than one novelty
        block (`NoveltyModel.too_small`).
    """
    novelty = getattr(model, "novelty", None) if novelty is None else novelty
    if novelty is None:
        raise ValueError("the model carries no novelty model: fit one with "
                         "cosmiq_pyro.inference.novelty.fit_novelty and set result.novelty")
    if isinstance(novelty, dict):
        novelty = NoveltyModel.from_state_dict(novelty)
    if not (isinstance(tile, int) and tile >= TILE_ALIGN and tile % TILE_ALIGN == 0):
        raise ValueError(f"tile must be a positive multiple of {TILE_ALIGN}, got {tile!r}")
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"image must be a finite 2-D array, got shape {x.shape}")
    small = novelty.too_small(x.shape)
    if small:
        raise ValueError(small)
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != x.shape:
            raise ValueError(f"ignore has shape {ignore.shape}, image has {x.shape}")
        mostly_ignored = novelty.too_ignored(ignore)
        if mostly_ignored:
            raise ValueError(mostly_ignored)
    net, guide = resolve(model, guide)
    weights = mean_weights(net, guide)
    z = model_input(x, getattr(model, "input_transform", None))  # the net's units; the noise uses x
    padded = pad_to_grid(z)
    sums = BlockSums(padded.shape, 2 * weights.hidden, novelty.block_px)
    device = weights.convs["inc1"][0].device  # where the model lives (CPU or CUDA)
    with torch.inference_mode():
        for (r0, r1, c0, c1), (ir0, ir1, ic0, ic1) in tile_boxes(padded.shape, tile, tile_margin(net)):
            part = torch.from_numpy(padded[ir0:ir1, ic0:ic1]).to(device)
            low = fused_bottleneck(weights, part[None, None])[0]  # (2h, h/2, w/2)
            core = low[:, (r0 - ir0) // 2:(r1 - ir0) // 2, (c0 - ic0) // 2:(c1 - ic0) // 2]
            sums.add(core, r0 // 2, c0 // 2)
    score, _, block_map = novelty.score(sums.means(), x, ignore=ignore)
    return Novelty(float(score), bool(score > novelty.threshold), novelty.expand(block_map, x.shape))
