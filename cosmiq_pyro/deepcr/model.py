"""deepCR's user-facing API on cosmiq_pyro models: ``deepCR(mask=...).clean(image)``.

A thin facade: loading goes through `models.registry.load_model`,
inference through `predictive.predict` (tiling, Monte Carlo draws), inpainting through
`inpaint.median_inpaint`.  Code written for deepCR 0.3.1::

    from deepCR import deepCR
    mdl = deepCR(mask="ACS-WFC", device="CPU")
    mask = mdl.clean(image, threshold=0.5)

runs unchanged with ``from cosmiq_pyro.model import deepCR``, and a Bayesian checkpoint adds
`deepCR.clean_vi` for probability, entropy and epistemic maps.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..inference.predictive import Prediction, predict
from ..models.registry import load_model
from ..models.results import FitResult
from .inpaint import median_inpaint

__all__ = ["deepCR"]

_DEVICES = ("CPU", "GPU")


class deepCR:  # noqa: N801 -- deepCR's own class name, so existing code runs unchanged
    """A CR mask model with deepCR's interface.

    Parameters
    ----------
    mask : str or os.PathLike
        ``"ACS-WFC"`` (or another batch-norm mask model shipped with the ``deepCR`` package) for
        deepCR's published weights in the deterministic twin, or the path of a cosmiq_pyro
        checkpoint (``.pth`` written by `training.train`, `fit_svi` / `fit_deterministic` with
        ``checkpoint=``, or `cosmiq_pyro.save`).
    device : {"CPU", "GPU"}
        "GPU" runs on CUDA; without a CUDA device it falls back to the CPU with a warning
        (deepCR raises instead).
    hidden : int, optional
        deepCR needs it for custom models; cosmiq_pyro checkpoints record their architecture,
        so it is only checked: a value that differs from the model's raises ValueError.
    inpaint : None
        deepCR's inpainting *network* is not available; ``clean(..., inpaint=True)`` uses
        deepCR's default median-mask inpainting.  Any other value raises ValueError.

    Attributes
    ----------
    result : FitResult
        The loaded model (``.model``, ``.guide``); pass it to `cosmiq_pyro.predict` directly.
    bayesian : bool
        True for a variational model (a guide is present).
    source : str
        ``mask`` as given.
    weights_file : pathlib.Path
        The file the weights were read from (the checkpoint, or deepCR's ``.pth``).
    """

    def __init__(self, mask="ACS-WFC", device: str = "CPU", hidden: int | None = None, inpaint=None):
        if inpaint is not None:
            raise ValueError(f"inpaint={inpaint!r}: deepCR's inpainting networks are not available in "
                             "cosmiq_pyro; use clean(image, inpaint=True) for median-mask inpainting")
        if not isinstance(device, str) or device.upper() not in _DEVICES:
            raise ValueError(f"device must be 'CPU' or 'GPU', got {device!r}")
        if device.upper() == "GPU" and not torch.cuda.is_available():
            warnings.warn("device='GPU' but no CUDA device is available; running on the CPU",
                          RuntimeWarning, stacklevel=2)
            device = "CPU"
        self.device = torch.device("cuda" if device.upper() == "GPU" else "cpu")
        if not isinstance(mask, (str, os.PathLike)):
            raise TypeError(f"mask must be a deepCR model name or a checkpoint path, got {type(mask).__name__}")
        self.source = os.fspath(mask)
        self.result: FitResult = load_model(mask, device=self.device)
        self.weights_file: Path = self.result.weights_file
        model_hidden = self.result.model.hidden
        if hidden is not None and hidden != model_hidden:
            raise ValueError(f"hidden={hidden!r} but the model {self.source!r} has hidden={model_hidden}")
        self.bayesian = self.result.bayesian
        self._warned_deterministic = False

    def __repr__(self) -> str:
        kind = "Bayesian (VI)" if self.bayesian else "deterministic"
        return f"deepCR(mask={self.source!r}, {kind}, hidden={self.result.model.hidden}, device={self.device.type})"

    def predict(self, image, *, T: int = 16, seed: int = 0, ignore=None, patch: int = 1024,
                progress: bool | None = None) -> Prediction:
        """All maps of one image as a `Prediction` (``predictive.predict`` on this model)."""
        return predict(self.result, image, T=T, seed=seed, ignore=ignore, tile=_tile(patch),
                       device=self.device, progress=progress)

    def clean(self, image, threshold: float = 0.5, binary: bool = True, inpaint: bool = False,
              segment: bool = True, patch: int = 1024, *, T: int = 16, seed: int = 0):
        """CR mask of ``image`` (and the inpainted image), as deepCR's ``clean``.

        Parameters
        ----------
        image : array_like (H, W)
            In electrons (for ACS/WFC an ``_flc`` SCI extension, as deepCR expects).
        threshold : float
            Probability above which a pixel is a CR in the binary mask.
        binary : bool
            Return the binary mask (uint8 0/1); otherwise the probability map (float32).
        inpaint : bool
            Also return the image with CR pixels (``prob > threshold``) replaced by the median
            of their clean 5x5 neighbours (`inpaint.median_inpaint`).
        segment, patch : bool, int
            Process the image in ``patch`` x ``patch`` tiles (memory control).  Unlike deepCR's,
            the tiles overlap by more than the network's receptive field, so the result does
            not depend on ``patch``.  ``patch`` is rounded up to a multiple of 4.
        T, seed : int
            Posterior draws averaged, and their seed, for a Bayesian model (ignored otherwise).

        Returns
        -------
        mask : numpy.ndarray (H, W)
            uint8 binary mask, or float32 probabilities with ``binary=False``.
        inpainted : numpy.ndarray (H, W), float32
            Only with ``inpaint=True``: ``(mask, inpainted)``.
        """
        _check_threshold(threshold)
        x = np.asarray(image)
        tile = _tile(patch) if segment else _tile(max(x.shape) if x.ndim == 2 else 4)
        prob = predict(self.result, x, T=T if self.bayesian else 1, seed=seed, tile=tile,
                       device=self.device).prob
        crs = prob > threshold
        out = crs.astype(np.uint8) if binary else prob
        if not inpaint:
            return out
        return out, median_inpaint(x, crs)

    def clean_vi(self, image, T: int = 16, return_entropy: bool = False, return_epistemic: bool = False,
                 threshold: float | None = None, seed: int = 0, *, ignore=None, patch: int = 1024):
        """Posterior-mean CR probability and, optionally, its uncertainty maps.

        Parameters
        ----------
        image : array_like (H, W)
            In electrons.
        T : int
            Posterior weight draws (``p = mean_t sigma(f_{w_t}(x))``).
        return_entropy : bool
            Also return the predictive entropy ``H[p]`` (nats).
        return_epistemic : bool
            Also return the epistemic part, the mutual information ``H[p] - mean_t H[p_t]``.
        threshold : float, optional
            Return the binary mask ``p > threshold`` (uint8) instead of ``p`` (float32).
        seed : int
            Seed of the draws: the same seed gives the same maps.
        ignore : array_like of bool (H, W), optional
            Bad pixels (their non-finite values are allowed).
        patch : int
            Tile side for large images (see `clean`).

        Returns
        -------
        numpy.ndarray or tuple
            ``p`` (or the mask), followed by ``entropy`` and then ``epistemic`` when requested.

        Notes
        -----
        On a deterministic model the maps come from one pass (``T = 1``): the entropy is then
        purely aleatoric and ``epistemic`` is zero; a warning says so once per model.
        """
        if threshold is not None:
            _check_threshold(threshold)
        pred = self.predict(image, T=T, seed=seed, ignore=ignore, patch=patch)
        if not self.bayesian and not self._warned_deterministic:
            warnings.warn(f"{self.source!r} is a deterministic model: clean_vi returns one pass (T=1) "
                          "and zero epistemic uncertainty; train with bayesian=True for a posterior",
                          UserWarning, stacklevel=2)
            self._warned_deterministic = True
        first = pred.prob if threshold is None else (pred.prob > threshold).astype(np.uint8)
        extra = ([pred.entropy] if return_entropy else []) + ([pred.epistemic] if return_epistemic else [])
        return (first, *extra) if extra else first


def _tile(patch) -> int:
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or patch < 1:
        raise ValueError(f"patch must be a positive int, got {patch!r}")
    return int(-(-patch // 4) * 4)


def _check_threshold(threshold) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
