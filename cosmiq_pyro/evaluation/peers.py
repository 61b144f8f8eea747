"""Cosmic-ray detectors behind one interface, for `cosmiq_pyro.evaluate` and `compare`.

A *predictor* is any object with

* ``is_probability`` (bool): True when its map is a calibrated-or-not CR *probability*, so
  that Brier, NLL, ECE and decisions at ``p > 0.5`` mean something; False for a detection
  *score* that only ranks pixels (then only ROC metrics are reported);
* ``predict(image, ignore=None, meta=None, seed=0) -> PeerPrediction`` for one ``(H, W)``
  image in electrons; ``ignore`` marks pixels to leave out (bad pixels, saturation), ``meta``
  is the frame's metadata (a dict, e.g. one row of ``dataset.meta``: ``read_noise_e``,
  ``full_well_e``...), ``seed`` seeds any sampling.

Three kinds are provided:

* `ModelPredictor`: our `UNet2Sigmoid` / `UNet2SigmoidVI` / `FitResult`, through
  `cosmiq_pyro.predict` (probability, predictive entropy and, with a posterior, epistemic).
* `DeepCRPeer`: deepCR's pretrained mask model (Zhang & Bloom 2020) through the ``deepCR``
  package, ``deepCR(mask, device).clean(image, binary=False, inpaint=False)``.  Its output is a
  probability; its predictive entropy is that of the Bernoulli it predicts; it has no
  epistemic estimate.
* `LACosmicPeer`: L.A.Cosmic (van Dokkum 2001) through ``astroscrappy.detect_cosmics``,
  swept over ``sigclip`` so that one score map traces its whole ROC.  Not a probability.

Uncertainties a predictor does not have are ``None`` and are reported as NaN, never filled in.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from ..inference.methods import check_method, method_draws
from ..inference.predictive import predict, validated_image
from ..models.registry import resolve
from ..models.results import FitResult
from ..utils.checks import check_int
from .metrics import binary_entropy

__all__ = ["PeerPrediction", "ModelPredictor", "DeepCRPeer", "LACosmicPeer", "DEFAULT_SIGCLIPS"]

#: sigclip values swept by `LACosmicPeer`: 1.25**k for k = 0..27, i.e. 1 to 414, 25 % apart.
#: On simulated ACS/WFC frames sigclip = 1 flags ~20-30 % of non-CR pixels and sigclip ~400
#: flags < 0.01 %, so the sweep spans the FPRs the study quotes (0.05 %, 0.5 %) in every field.
DEFAULT_SIGCLIPS = tuple(float(1.25 ** k) for k in range(28))


@dataclass
class PeerPrediction:
    """What a predictor returns for one image; maps are float32 of shape (H, W).

    Attributes
    ----------
    prob : numpy.ndarray
        CR probability in [0, 1] or, when ``is_probability`` is False, a detection score
        rescaled to [0, 1] (larger = more CR-like; only its ranking is meaningful).
    entropy : numpy.ndarray or None
        Predictive entropy (nats); None when the predictor has no probability.
    epistemic : numpy.ndarray or None
        Mutual information between label and weights (nats); None without a posterior.
    T : int or None
        Posterior draws behind ``prob`` (1 for point estimates and peers; None for a
        sampling-free predictive method).
    is_probability : bool
    """

    prob: np.ndarray
    entropy: Optional[np.ndarray]
    epistemic: Optional[np.ndarray]
    T: Optional[int]
    is_probability: bool

    def __repr__(self) -> str:
        kind = "probability" if self.is_probability else "score"
        return (f"PeerPrediction(shape={self.prob.shape}, {kind}, T={self.T}, "
                f"entropy={'yes' if self.entropy is not None else 'none'}, "
                f"epistemic={'yes' if self.epistemic is not None else 'none'})")


class ModelPredictor:
    """Our models as a predictor: `cosmiq_pyro.predict` behind the peer interface.

    Parameters
    ----------
    model : UNet2Sigmoid, UNet2SigmoidVI or FitResult
        A `FitResult`'s logit temperature (``.temperature``) and input transform
        (``.input_transform``: e.g. deepCR's ``WFC3-UVIS`` standardises, ``decam`` takes ADU) are
        applied to every prediction, and the moment pass uses its ``"moments"`` section.
    guide : AutoNormal, optional
        Needed for a bare `UNet2SigmoidVI` (a `FitResult` carries its own).
    method : str, optional
        The predictive method (`cosmiq_pyro.inference.methods.METHODS`; default its
        ``DEFAULT_METHOD``).
    T : int, optional
        Posterior draws per image of a Monte Carlo method (default ``DEFAULT_T``; ignored by
        the deterministic twin, which uses 1; an error with a sampling-free method).
    tile : int
        Tile side passed to `predict`.
    device : str or torch.device, optional

    Notes
    -----
    A point estimate (the deterministic twin, ``T = 1``) has no epistemic estimate: ``predict``
    returns zeros for it by construction, which `PeerPrediction` reports as None (NaN in
    tables) rather than as a measured zero.
    """

    is_probability = True

    def __init__(self, model, guide=None, *, method: str | None = None, T: int | None = None, tile: int = 1024,
                 device=None):
        net, guide = resolve(model, guide)  # raises TypeError/ValueError on bad input
        spec = check_method(method, T)
        self.method, self.T = spec.name, method_draws(spec, T, bayesian=guide is not None)
        self.model, self.guide, self.tile, self.device = net, guide, tile, device
        self.temperature = getattr(model, "temperature", 1.0)  # a FitResult's calibration
        # `predict` applies a FitResult's input transform (deepCR's WFC3-UVIS standardises, decam
        # takes ADU) and the moment pass its "moments" section when given the FitResult itself
        self._source = model if isinstance(model, FitResult) else net

    @property
    def bayesian(self) -> bool:
        return self.guide is not None

    def predict(self, image, ignore=None, meta: Optional[Mapping] = None, seed: int = 0) -> PeerPrediction:
        """Maps of ``image`` (electrons); ``meta`` is not used; ``seed`` seeds the draws."""
        pred = predict(self._source, image, guide=self.guide, method=self.method,
                       T=self.T if self.bayesian else None, ignore=ignore, seed=seed, novelty=False,
                       tile=self.tile, device=self.device, progress=False, temperature=self.temperature)
        return PeerPrediction(prob=pred.prob, entropy=pred.entropy,
                              epistemic=pred.epistemic if self.bayesian and pred.T != 1 else None, T=pred.T,
                              is_probability=True)

    def __repr__(self) -> str:
        kind = (f"VI, {self.method}" + ("" if self.T is None else f", T={self.T}")) if self.bayesian else "deterministic"
        return f"ModelPredictor({type(self.model).__name__}, {kind})"


class DeepCRPeer:
    """deepCR's pretrained mask model (Zhang & Bloom 2020) as a predictor.

    ``predict`` returns exactly ``deepCR.deepCR(mask, device).clean(image, binary=False,
    inpaint=False, segment=True, patch=patch)`` as float32: deepCR's own probability map,
    with its default 1024 px segmentation.  deepCR does not know about ``ignore``: the image
    is passed whole (non-finite ignored pixels replaced by the median of the finite pixels,
    as `cosmiq_pyro.predict` does), and ignored pixels are left out of the metrics later.

    Parameters
    ----------
    mask : str
        A deepCR mask model; ``"ACS-WFC"`` (the published HST ACS/WFC model, trained on real
        F435W/F606W/F814W frames, input in electrons) by default.
    device : {"CPU", "GPU"}
        deepCR's device names.
    patch : int
        deepCR's segmentation patch size (``clean(..., patch=)``).

    Raises
    ------
    ModuleNotFoundError
        When the ``deepCR`` package is not installed (``pip install deepCR`` or the
        ``cosmiq_pyro[deepcr]`` extra).
    """

    is_probability = True

    def __init__(self, mask: str = "ACS-WFC", device: str = "CPU", patch: int = 1024):
        try:
            from deepCR import deepCR
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError(
                "DeepCRPeer needs the deepCR package (pip install 'cosmiq_pyro[deepcr]' or "
                f"pip install deepCR==0.3.1); importing it failed: {err}") from None
        if device not in ("CPU", "GPU"):
            raise ValueError(f"device must be 'CPU' or 'GPU' (deepCR's names), got {device!r}")
        if not (isinstance(patch, int) and patch >= 4):
            raise ValueError(f"patch must be an int >= 4, got {patch!r}")
        self.mask, self.device, self.patch = mask, device, patch
        self._model = deepCR(mask=mask, device=device)

    def predict(self, image, ignore=None, meta: Optional[Mapping] = None, seed: int = 0) -> PeerPrediction:
        """deepCR's probability map of ``image`` (electrons); ``meta`` and ``seed`` are unused."""
        x = validated_image(image, ignore)
        prob = np.asarray(self._model.clean(x, binary=False, inpaint=False, segment=True,
                                            patch=self.patch), dtype=np.float32)
        return PeerPrediction(prob=prob, entropy=binary_entropy(prob).astype(np.float32), epistemic=None, T=1,
                              is_probability=True)

    def __repr__(self) -> str:
        return f"DeepCRPeer(mask={self.mask!r}, device={self.device!r})"


class LACosmicPeer:
    """L.A.Cosmic through ``astroscrappy.detect_cosmics``, swept over ``sigclip``.

    Each image is run once per value in ``sigclips``; a pixel's score is the largest sigclip
    at which it is flagged (0 if never).  Thresholding the score at a grid value s,
    ``sigclip_map >= s``, gives the pixels astroscrappy flags at s *or at any larger sigclip*:
    astroscrappy's masks are almost but not exactly nested in sigclip (a few pixels per frame
    appear at a larger sigclip and not at a smaller one, through the iterations and the
    neighbour step), and the union keeps the score monotone.  At the largest sigclip it is
    astroscrappy's mask exactly.  ``predict`` returns ``sigclip_map / max(sigclips)`` as the
    score in [0, 1]; it is not a probability (``is_probability = False``).

    Parameters
    ----------
    sigclips : sequence of float
        Laplacian-to-noise thresholds swept (`DEFAULT_SIGCLIPS`: 1 to 414, 25 % apart).
    sigfrac, objlim, niter, sepmed, cleantype, fsmode
        astroscrappy's defaults (0.3, 5.0, 4, True, "meanmask", "median").  objlim = 5 is the
        value van Dokkum (2001, Fig. 4) and the L.A.Cosmic documentation advise for
        undersampled HST images.
    gain : float
        Electrons per data unit.  cosmiq_pyro images are in electrons, so 1.0 (the frame's
        ``gain_e_per_adu`` describes the detector's ADC, already applied).
    readnoise_e : float, optional
        Read noise in electrons.  Default: each frame's ``meta["read_noise_e"]`` (the
        simulator records it); a frame without it raises ValueError.
    satlevel_e : float, optional
        Saturation level in electrons, for astroscrappy's saturated-star protection.
        Default: each frame's ``meta["full_well_e"]`` when present, else infinity (no
        saturation detection; saturated pixels should then be in ``ignore``, which is passed
        to astroscrappy as ``inmask``).

    Notes
    -----
    Thread counts are the caller's: torch's idle OpenMP workers compete with astroscrappy's own
    OpenMP loops, so in a process that also runs torch with several threads a small frame was
    measured ~100x slower (0.5 s vs 4 ms for 64x64 with 2 torch threads).  Run studies with
    ``torch.set_num_threads(1)`` (the ``cosmiq`` CLI and the test suite do).
    """

    is_probability = False

    def __init__(self, sigclips=DEFAULT_SIGCLIPS, *, sigfrac: float = 0.3, objlim: float = 5.0,
                 niter: int = 4, gain: float = 1.0, readnoise_e: Optional[float] = None,
                 satlevel_e: Optional[float] = None, sepmed: bool = True,
                 cleantype: str = "meanmask", fsmode: str = "median"):
        import astroscrappy  # a hard dependency; imported here to keep `import peers` light

        grid = np.asarray(sigclips, dtype=np.float64).ravel()
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ValueError(f"sigclips must be a non-empty sequence of positive numbers, got {sigclips!r}")
        self.sigclips = tuple(float(s) for s in np.unique(grid))  # ascending, distinct
        for name, value in (("sigfrac", sigfrac), ("objlim", objlim), ("gain", gain)):
            if not (isinstance(value, numbers.Real) and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name, value in (("readnoise_e", readnoise_e), ("satlevel_e", satlevel_e)):
            if value is not None and not (isinstance(value, numbers.Real) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")
        niter = check_int(niter, "niter", minimum=1)
        self.options = dict(sigfrac=float(sigfrac), objlim=float(objlim), niter=int(niter),
                            gain=float(gain), sepmed=bool(sepmed), cleantype=cleantype,
                            fsmode=fsmode)
        self.readnoise_e, self.satlevel_e = readnoise_e, satlevel_e
        self._detect = astroscrappy.detect_cosmics

    def detector_settings(self, meta: Optional[Mapping] = None) -> dict:
        """The keyword arguments of ``detect_cosmics`` (except sigclip) for a frame's ``meta``."""
        meta = meta or {}
        readnoise = self.readnoise_e if self.readnoise_e is not None else meta.get("read_noise_e")
        if readnoise is None or not np.isfinite(readnoise):
            raise ValueError("LACosmicPeer needs the read noise: give LACosmicPeer(readnoise_e=...) "
                             "or frames whose meta has 'read_noise_e' (simulate.make_dataset, "
                             f"SimulatedDataset); meta has {sorted(meta)}")
        satlevel = self.satlevel_e if self.satlevel_e is not None else meta.get("full_well_e")
        if satlevel is None or not np.isfinite(satlevel):
            satlevel = np.inf
        return dict(self.options, readnoise=float(readnoise), satlevel=float(satlevel))

    def sigclip_map(self, image, ignore=None, meta: Optional[Mapping] = None) -> np.ndarray:
        """Largest sigclip of the sweep at which each pixel is flagged (0 if never), float32 (H, W)."""
        x = validated_image(image, ignore)
        inmask = None if ignore is None else np.asarray(ignore, dtype=bool)
        settings = self.detector_settings(meta)
        score = np.zeros(x.shape, dtype=np.float32)
        for s in self.sigclips:  # ascending: a later (larger) sigclip overwrites
            flagged, _ = self._detect(x, inmask=inmask, sigclip=s, **settings)
            score[flagged] = s
        return score

    def predict(self, image, ignore=None, meta: Optional[Mapping] = None, seed: int = 0) -> PeerPrediction:
        """Score ``sigclip_map / max(sigclips)`` in [0, 1]; no entropy, no epistemic."""
        score = self.sigclip_map(image, ignore, meta) / np.float32(self.sigclips[-1])
        return PeerPrediction(prob=score.astype(np.float32), entropy=None, epistemic=None, T=1,
                              is_probability=False)

    def __repr__(self) -> str:
        return (f"LACosmicPeer({len(self.sigclips)} sigclips {self.sigclips[0]:g}..{self.sigclips[-1]:g}, "
                f"objlim={self.options['objlim']:g}, sigfrac={self.options['sigfrac']:g})")
