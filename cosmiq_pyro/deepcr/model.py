"""deepCR's user-facing API on cosmiq_pyro models: ``deepCR(mask=..., inpaint=...).clean(image)``.

A thin facade: models load through `cosmiq_pyro.models.registry.load_model` (a checkpoint path or a
published name), mask inference runs through `cosmiq_pyro.predict` (overlapping tiles, Monte Carlo
draws), inpainting through deepCR's published inpainting networks (`inpaint_net.InpaintUNet`) or,
without one, median-mask inpainting (`inpaint.median_inpaint`).  Code written for deepCR 0.3.1::

    from deepCR import deepCR
    mdl = deepCR(mask="ACS-WFC", inpaint="ACS-WFC-F606W-2-32", device="CPU")
    mask, cleaned = mdl.clean(image, threshold=0.5, n_jobs=-1)

runs unchanged with ``from cosmiq_pyro.model import deepCR``, and a Bayesian checkpoint adds
`deepCR.clean_vi` for probability, entropy and epistemic maps.

Tiles: deepCR cuts the image into ``patch`` x ``patch`` blocks with no overlap (its blocks see
zero padding at their edges, so its mask changes along block borders).  Here each block is
widened by the tile margin (`utils.tiling.tile_margin`, from the net's receptive field) of real neighbours and the margin is dropped, so the maps do not
depend on ``segment``, ``patch`` or ``n_jobs`` beyond float rounding; with ``n_jobs`` > 1 the
same blocks run on threads (torch releases the GIL), so the maps equal ``n_jobs=1``'s.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import warnings

import numpy as np
import torch

from .inpaint import median_inpaint
from .inpaint_net import InpaintUNet, inpaint_with_net
from ..data.input_transform import standardise
from ..inference.novelty import image_novelty
from ..inference.methods import check_method
from ..inference.predictive import Prediction, predict, validated_image
from ..instruments import instrument_for_deepcr
from ..models.registry import load_model
from ..models.results import FitResult
from ..models.unet import deepcr_weights_file
from ..utils.checks import check_int, check_probability
from ..models.weight_norm import is_deepcr_weight_norm_file, unet_from_weight_norm
from ..utils.tiling import TILE_ALIGN, resolve_n_jobs, run_each, tile_boxes, tile_margin

__all__ = ["deepCR", "INPUT_SCALE"]

_DEVICES = ("CPU", "GPU")
_ALIGN = TILE_ALIGN  # block origins on the pooling grid
#: deepCR's input scale per published mask model (``learned_models.mask_dict``): the image is
#: divided by it before the network and the inpainted image multiplied back.
INPUT_SCALE = {"example_model": 100.0}
#: Pyro's handler stack is global: posterior draws (inside `predict`) must not run on two threads.
_PYRO_LOCK = threading.Lock()


class deepCR:  # noqa: N801 -- deepCR's own class name, so existing code runs unchanged
    """A CR mask model (and optionally an inpainting network) with deepCR 0.3.1's interface.

    Parameters
    ----------
    mask : str or os.PathLike
        ``"ACS-WFC"`` (or another mask model shipped with the ``deepCR`` package: ``"decam"``,
        ``"example_model"``, ``"WFC3-UVIS"``, ...) for deepCR's published weights in the
        deterministic twin, or the path of a cosmiq_pyro checkpoint (``.pth`` written by `train`,
        ``fit_svi`` / ``fit_deterministic`` with ``checkpoint=``, or ``cosmiq_pyro.save``), or of
        a model deepCR's own ``train`` wrote (its weight-norm ``UNet2Sigmoid``; like deepCR's
        ``clean``, the image is not standardised for it).
    inpaint : str, optional
        Name of a deepCR inpainting network (``"ACS-WFC-F606W-2-32"``; also
        ``"ACS-WFC-F606W-3-32"``, which deepCR ships but cannot load by name).  None (deepCR's
        default): ``clean(..., inpaint=True)`` fills CR pixels with the median of their clean
        5x5 neighbours.
    device : {"CPU", "GPU"}
        "GPU" runs on CUDA; without a CUDA device it falls back to the CPU with a warning
        (deepCR raises instead).
    hidden : int, optional
        deepCR needs it for custom models; cosmiq_pyro checkpoints record their architecture,
        so it is only checked: a value that differs from the model's raises ValueError.

    Attributes
    ----------
    result : FitResult
        The loaded mask model (``.model``, ``.guide``); pass it to `cosmiq_pyro.predict` directly.
    inpaintNet : InpaintUNet or None
        The inpainting network (deepCR's attribute name).
    bayesian : bool
        True for a variational model (a guide is present).
    scale : float
        deepCR's input scale (100 for ``"example_model"``, else 1).
    standardise : bool
        deepCR's ``norm``: the model sees ``(x / scale - mean) / std`` of the whole frame
        (``"WFC3-UVIS"``); the inpainted image is returned in the input's units.
    source : str
        ``mask`` as given.
    input_unit : str or None
        The pixel unit deepCR's published model takes, from the spec of the camera it was made for
        (`cosmiq_pyro.instruments`, ``[models] deepcr_input_unit``): ``"ELECTRONS"`` for
        ``"ACS-WFC"`` and ``"WFC3-UVIS"``, ``"ADU"`` (DECam's) for ``"decam"`` and for a
        checkpoint whose input transform divides by a gain (``"DECam-VI"``, adapted from
        ``decam``: like deepCR's model it takes the frame in ADU here); None for another
        checkpoint or a model no shipped spec names.
    weights_file : pathlib.Path
        The file the mask weights were read from.
    """

    def __init__(self, mask="ACS-WFC", inpaint=None, device: str = "CPU", hidden: int | None = None):
        if not isinstance(device, str) or device.upper() not in _DEVICES:
            raise ValueError(f"device must be 'CPU' or 'GPU', got {device!r}")
        if device.upper() == "GPU" and not torch.cuda.is_available():
            warnings.warn("device='GPU' but no CUDA device is available; running on the CPU",
                          RuntimeWarning, stacklevel=2)
            device = "CPU"
        self.device = torch.device("cuda" if device.upper() == "GPU" else "cpu")
        if not isinstance(mask, (str, os.PathLike)):
            raise TypeError(f"mask must be a deepCR model name or a checkpoint path, got {type(mask).__name__}")
        if inpaint is not None and not isinstance(inpaint, str):
            raise TypeError(f"inpaint must be a deepCR inpainting model name or None, got {type(inpaint).__name__}")
        self.source = os.fspath(mask)
        if os.path.isfile(self.source) and is_deepcr_weight_norm_file(self.source):
            net, path = unet_from_weight_norm(self.source)  # a model deepCR's own train wrote
            self.result = FitResult(model=net.to(self.device), weights_file=path)
        else:
            self.result = load_model(mask, device=self.device)
        #: deepCR's ``norm``: the model takes ``(x - mean(x)) / std(x)`` of the whole frame (the
        #: model's input transform, `cosmiq_pyro.data.input_transform`; WFC3-UVIS and models adapted
        #: from it).  The facade applies it to the whole frame, so its patches go to `predict` as
        #: they are (``_patch_result`` carries no transform).
        self.standardise = (self.result.input_transform or {}).get("kind") == "standardise"
        self._patch_result = dataclasses.replace(self.result, input_transform=None)
        self.weights_file = self.result.weights_file
        model_hidden = self.result.model.hidden
        if hidden is not None and hidden != model_hidden:
            raise ValueError(f"hidden={hidden!r} but the model {self.source!r} has hidden={model_hidden}")
        self.scale = INPUT_SCALE.get(self.source, 1.0) if isinstance(mask, str) else 1.0
        spec = instrument_for_deepcr(self.source) if isinstance(mask, str) else None
        if spec is not None:
            self.input_unit = spec.models.deepcr_input_unit
        else:  # a checkpoint that takes ADU (adapted from decam: DECam-VI) says so with its transform
            scaled = (self.result.input_transform or {}).get("kind") == "scale"
            self.input_unit = "ADU" if scaled else None
        self.inpaintNet = None if inpaint is None else InpaintUNet.from_deepcr(inpaint).to(self.device)
        self.inpaint_file = None if inpaint is None else deepcr_weights_file(inpaint, kind="inpaint")
        self.bayesian = self.result.bayesian
        self._warned_deterministic = False

    def __repr__(self) -> str:
        kind = "Bayesian (VI)" if self.bayesian else "deterministic"
        fill = "median 5x5" if self.inpaintNet is None else f"network {self.inpaint_file.stem!r}"
        return (f"deepCR(mask={self.source!r}, {kind}, hidden={self.result.model.hidden}, inpaint: {fill}, "
                f"device={self.device.type})")

    # ------------------------------------------------------------------ maps

    def predict(self, image, *, method: str | None = None, T: int | None = None, seed: int = 0, ignore=None,
                patch: int = 1024, segment: bool = True, n_jobs: int = 1) -> Prediction:
        """All maps of one image as a `Prediction` (``cosmiq_pyro.predict`` on this model).

        The image is put in the model's units first (`scale`, `standardise`).  ``patch``,
        ``segment`` and ``n_jobs`` as in `clean`; ``method``, ``T`` and ``seed`` as in `clean_vi`.
        """
        x, _, _ = self._model_units(image)
        spec = check_method(method, T)
        workers = resolve_n_jobs(n_jobs)
        side = _patch(patch) if (segment or workers > 1) else max(_ALIGN, -(-max(x.shape) // _ALIGN) * _ALIGN)
        margin = tile_margin(self.result.model, spec.extra_margin)
        blocks = tile_boxes(x.shape, side, margin)  # origins stay on the pooling grid
        mask = None if ignore is None else np.asarray(ignore, dtype=bool)
        if mask is not None and mask.shape != x.shape:
            raise ValueError(f"ignore has shape {mask.shape}, image has {x.shape}")
        maps = np.zeros((4,) + x.shape, np.float32)  # prob, entropy, aleatoric, epistemic
        made = {}

        def run(boxes):
            (r0, r1, c0, c1), (ir0, ir1, ic0, ic1) = boxes
            part = None if mask is None else mask[ir0:ir1, ic0:ic1]
            with _PYRO_LOCK if self.bayesian else contextlib.nullcontext():  # draws: Pyro's global stack
                pred = predict(self._patch_result, x[ir0:ir1, ic0:ic1], method=spec.name, T=T, seed=seed,
                               ignore=part, tile=side + 2 * margin, device=self.device, progress=False,
                               novelty=False)  # a patch's novelty is not the frame's: clean_vi scores the frame
            core = (slice(r0 - ir0, r1 - ir0), slice(c0 - ic0, c1 - ic0))
            for k, m in enumerate((pred.prob, pred.entropy, pred.aleatoric, pred.epistemic)):
                maps[k, r0:r1, c0:c1] = m[core]
            made.update(T=pred.T, method=pred.method)

        run_each(run, blocks, workers)
        return Prediction(prob=maps[0], entropy=maps[1], aleatoric=maps[2], epistemic=maps[3], **made)

    def clean(self, img0, threshold: float = 0.5, inpaint: bool = False, binary: bool = True,
              segment: bool = True, patch: int = 1024, n_jobs: int = 1, *, method: str | None = None,
              T: int | None = None, seed: int = 0):
        """CR mask of ``img0`` (and the inpainted image), as deepCR's ``clean``.

        Parameters
        ----------
        img0 : array_like (H, W)
            In electrons (for ACS/WFC an ``_flc`` SCI extension, as deepCR expects).
        threshold : float
            Probability above which a pixel is a CR in the binary mask (and is inpainted).
        inpaint : bool
            Also return the image with the CR pixels (``prob > threshold``) filled: by the
            inpainting network given to the constructor, else by the median of each pixel's clean
            5x5 neighbours (deepCR's default).
        binary : bool
            Return the binary mask (uint8 0/1); otherwise the probability map (float32).
        segment : bool
            Run the image in ``patch`` x ``patch`` blocks (memory control).  Blocks overlap by
            the net's receptive field (deepCR's do not), so the result does not depend on it.
        patch : int
            Block side, rounded up to a multiple of 4.
        n_jobs : int
            Blocks run on this many threads (``-1``: every core, joblib's convention, as deepCR);
            the maps are the same as with ``n_jobs=1``.  Blocks of a Bayesian model run one at a
            time (their posterior draws go through Pyro's global state).
        method, T, seed
            Predictive method, posterior draws and their seed for a Bayesian model (as in
            `clean_vi`; a deterministic model makes one pass).

        Returns
        -------
        mask : numpy.ndarray (H, W)
            uint8 binary mask, or float32 probabilities with ``binary=False``.
        inpainted : numpy.ndarray (H, W), float32
            Only with ``inpaint=True``: ``(mask, inpainted)``, in the units of ``img0``.
        """
        _check_threshold(threshold)
        x = np.asarray(img0)
        validated_image(self._model_units(x)[0], remedy="clean() takes no ignore= (as deepCR's): call "
                        "clean_vi(img0, ignore=~numpy.isfinite(img0)) to leave them out, or replace them first")
        prob = self.predict(x, method=method, T=T, seed=seed, patch=patch, segment=segment, n_jobs=n_jobs).prob
        crs = prob > threshold
        out = crs.astype(np.uint8) if binary else prob
        if not inpaint:
            return out
        return out, self._fill(x, crs, patch=patch, n_jobs=n_jobs)

    def inpaint(self, img0, mask, *, patch: int = 1024, n_jobs: int = 1) -> np.ndarray:
        """``img0`` with the pixels of ``mask`` filled (deepCR's ``inpaint``).

        Parameters
        ----------
        img0 : array_like (H, W)
            Image, in the units the mask model takes (electrons for ACS/WFC).
        mask : array_like (H, W)
            Pixels to fill (nonzero), e.g. a binary mask from `clean`.
        patch, n_jobs : int
            Tiling of the inpainting network (see `clean`); unused by median inpainting.

        Returns
        -------
        numpy.ndarray (H, W), float32
        """
        x = np.asarray(img0)
        m = np.asarray(mask)
        if x.ndim != 2 or m.shape != x.shape:
            raise ValueError(f"img0 must be 2-D and mask of its shape, got {x.shape} and {m.shape}")
        return self._fill(x, m != 0, patch=patch, n_jobs=n_jobs)

    def _model_units(self, image):
        """``image`` as the model takes it, ``z = (x / scale - b) / a``, and ``(a, b)`` (float32).

        deepCR: divide by the model's scale, then, for a standardised model, subtract the mean and
        divide by the standard deviation of the whole frame (finite pixels).
        """
        x = np.asarray(image)
        if x.ndim != 2:
            raise ValueError(f"image must be 2-D (H, W), got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise TypeError(f"image must hold real numbers, got dtype {x.dtype}")
        z = x.astype(np.float32) / np.float32(self.scale)
        a, b = np.float32(1), np.float32(0)
        if self.standardise:
            z, a, b = standardise(z)
        return z, a, b

    def _fill(self, x: np.ndarray, crs: np.ndarray, *, patch: int, n_jobs: int) -> np.ndarray:
        if self.inpaintNet is None:  # a median commutes with the affine change of units
            return median_inpaint(x, crs)
        z, a, b = self._model_units(x)
        filled = inpaint_with_net(self.inpaintNet, z, crs, tile=_patch(patch), device=self.device, n_jobs=n_jobs)
        return ((filled * a + b) * np.float32(self.scale)).astype(np.float32)

    def clean_vi(self, image, T: int | None = None, return_entropy: bool = False, return_epistemic: bool = False,
                 threshold: float | None = None, seed: int = 0, *, method: str | None = None, ignore=None,
                 patch: int = 1024,
                 inpaint: bool = False, n_jobs: int = 1, return_novelty: bool = False):
        """Posterior-mean CR probability and, optionally, its uncertainty maps and inpainted image.

        Parameters
        ----------
        image : array_like (H, W)
            In electrons.
        T : int, optional
            Posterior weight draws of a Monte Carlo method (``p = mean_t sigma(f_{w_t}(x))``;
            default `cosmiq_pyro.inference.methods.DEFAULT_T`); not with a sampling-free method.
        return_entropy : bool
            Also return the predictive entropy ``H[p]`` (nats).
        return_epistemic : bool
            Also return the epistemic part, the mutual information ``H[p] - mean_t H[p_t]``.
        threshold : float, optional
            Return the binary mask ``p > threshold`` (uint8) instead of ``p`` (float32).
        seed : int
            Seed of the draws: the same seed gives the same maps.
        method : str, optional
            The predictive method (``"mc"``, ...; default
            `cosmiq_pyro.inference.methods.DEFAULT_METHOD`), as for `cosmiq_pyro.predict`.
        ignore : array_like of bool (H, W), optional
            Bad pixels (their non-finite values are allowed).
        patch : int
            Block side for large images (see `clean`).
        inpaint : bool
            Also return the image with the pixels ``p > threshold`` (0.5 when ``threshold`` is
            None) filled, as `clean` does; ``ignore`` pixels are never used as fill values.
        n_jobs : int
            Threads for the blocks and the inpainting network (see `clean`).
        return_novelty : bool
            Also return how unlike the model's training frames the image is, a
            `cosmiq_pyro.inference.novelty.Novelty` ``(score, is_novel, map)`` (one extra encoder
            pass over the frame); the model must carry a novelty model (deepCR's ``ACS-WFC``
            weights do; a ValueError says when it does not).

        Returns
        -------
        numpy.ndarray or tuple
            ``p`` (or the mask), followed by ``entropy``, then ``epistemic`` when requested, then
            the inpainted image with ``inpaint=True``, then the `Novelty` with ``return_novelty``.

        Notes
        -----
        On a deterministic model the maps come from one pass (``T = 1``): the entropy is then
        purely aleatoric and ``epistemic`` is zero; a warning says so once per model.
        """
        if threshold is not None:
            _check_threshold(threshold)
        pred = self.predict(image, method=method, T=T, seed=seed, ignore=ignore, patch=patch, n_jobs=n_jobs)
        if not self.bayesian and not self._warned_deterministic:
            warnings.warn(f"{self.source!r} is a deterministic model: clean_vi returns one pass (T=1) "
                          "and zero epistemic uncertainty; train with bayesian=True for a posterior",
                          UserWarning, stacklevel=2)
            self._warned_deterministic = True
        first = pred.prob if threshold is None else (pred.prob > threshold).astype(np.uint8)
        extra = ([pred.entropy] if return_entropy else []) + ([pred.epistemic] if return_epistemic else [])
        if inpaint:
            crs = pred.prob > (0.5 if threshold is None else threshold)
            if self.inpaintNet is None:
                extra.append(median_inpaint(image, crs, ignore=ignore))
            else:
                x = np.asarray(image, dtype=np.float32)
                if ignore is not None:  # the network needs finite input; ignored pixels count as masked
                    crs = crs | np.asarray(ignore, dtype=bool)
                    x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
                extra.append(self._fill(x, crs, patch=patch, n_jobs=n_jobs))
        if return_novelty:
            in_scale = np.asarray(image, dtype=np.float32) / np.float32(self.scale)  # the transform is image_novelty's
            transform = self.result.input_transform or {}
            if transform.get("kind") == "scale":  # the image is in the model's units (ADU): electrons for the score
                in_scale = in_scale * np.float32(transform["divide_by"])
            extra.append(image_novelty(self.result, validated_image(in_scale, ignore),
                                       tile=min(_patch(patch), 512)))
        return (first, *extra) if extra else first


def _patch(patch) -> int:
    patch = check_int(patch, "patch", minimum=1)
    return -(-patch // _ALIGN) * _ALIGN


def _check_threshold(threshold) -> None:
    check_probability(threshold, "threshold")
