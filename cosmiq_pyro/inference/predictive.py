"""Prediction: per-pixel CR probability and uncertainty maps, by one of several predictive methods.

For posterior draws ``w_t ~ q(w)``, ``t = 1..T``, with per-draw logits ``z_t = f_{w_t}(x)`` and
probabilities ``p_t = sigma(z_t)``:

.. math::
    \\bar p = \\frac{1}{T}\\sum_t p_t, \\qquad
    H[\\bar p] = -\\bar p \\log \\bar p - (1-\\bar p)\\log(1-\\bar p)   \\;\\text{(entropy, nats)},

    A = \\frac{1}{T}\\sum_t H[p_t] \\;\\text{(aleatoric)}, \\qquad
    E = H[\\bar p] - A \\ge 0 \\;\\text{(epistemic: the mutual information between the label
    and the weights, BALD)},

with each draw's entropy computed from its logit without forming ``log p``:
``H[sigma(z)] = softplus(z) - z sigma(z)``.  A model calibrated by temperature scaling
(`inference.temperature`, ``FitResult.temperature = T_c``) has every logit divided first,
``z_t -> z_t / T_c``, and a model trained at a boosted CR rate has its prior-shift correction
added after (`inference.prior_shift`, ``z_t -> z_t / T_c + Delta``), so all maps describe the
calibrated predictive at the real CR rate.

Methods (``predict(..., method=)``; `methods.METHODS`, default `methods.DEFAULT_METHOD`): ``"mc"``,
the Monte Carlo average above over ``T`` iid draws (the reference), and ``"moments"``,
sampling-free (``p`` and ``A`` from the logit's mean and variance carried through the net,
`inference.moments`).  ``T`` counts Monte Carlo draws: the rule is in `methods`.

Monte Carlo draws are made `DRAW_CHUNK` at a time (`draws.weight_chunks`); each chunk's batch
norms are folded into the convolutions and every tile runs one fused forward pass per draw
(`models.fused`), adding ``p_t`` and ``H[p_t]`` to float64 running sums in draw order.  Memory
therefore does not grow with ``T``, all tiles see the same draws, and the maps do not depend on
the chunk size.  `models.bayesian.probs_given_weights` (one pass of the Pyro model per draw) is
the reference this fast path is tested against.

Images run in overlapping tiles (`utils.tiling`): each tile is extended by a margin derived from
the network's receptive field (`utils.tiling.tile_margin`, 12 px for `UNet2Sigmoid`) and the
margin is discarded, so the tiled maps equal the untiled ones to float rounding (for batch norm
or no norm; group norm's statistics span the whole input, so with it tiles change the result
slightly and only the caller's ``tile`` is used).  On the CPU tiles are at most `CPU_TILE` px,
which keeps a tile's activations in the processor's cache.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.input_transform import model_input
from ..io.fitsio import MAX_ABS_ELECTRONS
from ..models.fused import FusedWeights, fuse_weights, fused_bottleneck, fused_logits
from ..models.registry import resolve
from ..utils.checks import check_int, check_seed
from ..utils.tiling import TILE_ALIGN, pad_to_grid, tile_boxes, tile_margin
from ..utils.torchtools import binary_entropy, eval_mode, resolve_device
from .draws import DRAW_BLOCK, weight_chunks
from .methods import DEFAULT_METHOD, check_method, method_draws
from .novelty import BlockSums, NoveltyModel, mean_weights
from .prior_shift import logit_shift
from .temperature import check_temperature

__all__ = ["CPU_TILE", "CUDA_PASS_BYTES", "DRAW_CHUNK", "Prediction", "predict", "validated_image"]

#: Largest core tile side on the CPU (px).  Tiles are balanced (a 1024 px side runs as three
#: 344 px tiles), so an input tile is at most 408 px and each 32-channel activation at most
#: 21 MB: inside this machine's 32 MB L3 cache and below glibc's 32 MB mmap threshold (larger
#: buffers are mapped afresh, and page-faulted in, at every allocation).  Whole 1024 px tiles
#: ran 1.6x slower per pixel, 256 px tiles 1.07x (margins); see benchmarks/bench_predict.py.
CPU_TILE = 384
#: Draws evaluated together by one grouped-convolution pass on CUDA (memory budget per pass);
#: on the CPU one draw per pass is faster (oneDNN's grouped kernels are slower per draw here,
#: see benchmarks/bench_predict.py), so draws run one after another.
CUDA_PASS_BYTES = 2 * 1024 ** 3
#: Posterior draws held in memory at once (they are made in seeded blocks of
#: `draws.DRAW_BLOCK`, so this changes memory, not the maps).
DRAW_CHUNK = DRAW_BLOCK
@dataclass
class Prediction:
    """Per-pixel maps from `predict`, each float32 of shape (H, W).

    Attributes
    ----------
    prob : predictive mean of the CR probability.
    entropy : binary entropy of ``prob`` (nats).
    aleatoric : expected binary entropy of one posterior draw's probability (nats).
    epistemic : ``entropy - aleatoric``, the mutual information (nats, >= 0).
    T : number of posterior draws averaged (Monte Carlo methods); 1 for the deterministic twin;
        None for a sampling-free method.
    novelty : how unlike the model's training frames the image is (float, higher = less alike;
        1 = the 95th percentile of held-out in-distribution frames), `inference.novelty`; None
        when the model carries no novelty model or the image is smaller than one novelty block.
    novelty_map : the per-block (64x64 px) novelty on each pixel (float32, image shape; 1 = the
        95th percentile of in-distribution blocks), or None.
    is_novel : ``novelty`` above the threshold stored with the model (its nominal false-alarm rate
        on held-out in-distribution frames: 2.5 % for the shipped models), or None.
    ignore : bool (H, W): the pixels the caller excluded (``predict``'s ``ignore``: DQ-flagged,
        non-finite, fill values).  The maps hold the network's output there all the same (on
        the stored value of a DQ-flagged pixel; on the median of the other pixels, put in place
        of a non-finite or fill value), which describes no usable measurement: `mask` leaves
        them out, as do CR counts and the novelty score, and a FITS product writes NaN maps and
        MASK = 2 there.  None when made without ``predict``.
    method : the predictive method (`methods.METHODS`), or ``"deterministic"`` for a plain net.
    """

    prob: np.ndarray
    entropy: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    T: int | None
    novelty: float | None = None
    novelty_map: np.ndarray | None = None
    is_novel: bool | None = None
    ignore: np.ndarray | None = None
    method: str = DEFAULT_METHOD

    def mask(self, threshold: float = 0.5) -> np.ndarray:
        """Boolean CR mask ``prob > threshold``, False on the pixels of `ignore`."""
        crs = self.prob > threshold
        return crs if self.ignore is None else crs & ~self.ignore

    def __repr__(self) -> str:
        how = f"method={self.method!r}" + ("" if self.T is None else f", T={self.T}")
        return (f"Prediction(shape={self.prob.shape}, {how}, CR pixels (p>0.5)={int(self.mask().sum())}, "
                f"mean entropy={float(self.entropy.mean()):.4g} nats, "
                f"mean epistemic={float(self.epistemic.mean()):.4g} nats"
                + ("" if self.novelty is None else f", novelty={self.novelty:.3g}, is_novel={self.is_novel}") + ")")


def predict(model, image, *, guide=None, method: str | None = None, T: int | None = None, ignore=None,
            seed: int = 0, tile: int = 1024, device=None, progress: bool | None = None, novelty=None,
            temperature: float | None = None) -> Prediction:
    """CR probability, entropy, aleatoric and epistemic maps of one image.

    Parameters
    ----------
    model : UNet2SigmoidVI, UNet2Sigmoid or FitResult
        A VI model needs its ``guide`` (given here or inside the `FitResult`); a plain net is
        the deterministic twin (one pass whatever the method, ``T = 1``, epistemic all zero).
    image : array_like, shape (H, W)
        In electrons (what the model was trained on).  Any size.  A `FitResult` with an
        ``input_transform`` (e.g. standardised frames) gets it applied to the whole image first.
    method : str, optional
        The predictive method (`methods.METHODS`): ``"mc"`` (Monte Carlo over ``T`` posterior
        draws) or ``"moments"`` (sampling-free moment propagation).  Default
        `methods.DEFAULT_METHOD`, or ``"mc"`` when ``T`` is given (`methods.check_method`).
    T : int, optional
        Posterior draws of a Monte Carlo method (default `methods.DEFAULT_T`, at most
        `draws.MAX_T`).  Memory does not grow with it.  Giving ``T`` with a sampling-free
        method is a ValueError.
    ignore : array_like of bool, shape (H, W), optional
        Pixels to exclude (bad pixels, saturation).  Non-finite pixels are allowed only here
        (they are replaced by the median of the finite pixels).  Their maps are still computed
        (see `Prediction.ignore`) but they are left out of `Prediction.mask` and the novelty
        score.  Every pixel ignored is an error.
    seed : int
        Seed of the posterior draws: the same seed gives the same maps.
    tile : int
        Largest core tile side in px (a multiple of 4); larger images run in tiles whose
        margin comes from the net's receptive field (`utils.tiling.tile_margin`).  On the CPU,
        tiles are at most `CPU_TILE` px (faster; the maps are the same to float rounding),
        except for group-norm nets, whose maps depend on the tiling.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.  ``"cuda"`` without a CUDA device is a ValueError.
    progress : bool, optional
        tqdm bar over tiles; default: shown when the image is larger than one ``tile``.
    novelty : NoveltyModel, dict or bool, optional
        The novelty model (or its state dict) scoring the image against the training frames:
        default (None or True) the one a `FitResult` carries (``.novelty``); False skips it.
        Its features are the bottleneck map of the same pass (deterministic twin) or of one
        encoder pass with the posterior means (VI, whatever the method: the score does not
        depend on it), so it adds a few percent to the time.  An image smaller than one novelty
        block (64x64 px), or whose every block is more than half ignored pixels, gets none, with
        a warning saying so.
    temperature : float, optional
        Divide every logit by this before the sigmoid (> 0).  Default: the `FitResult`'s
        ``temperature`` (fitted on validation data at the end of training), 1 for a bare net.
        A `FitResult`'s prior-shift correction (its ``"prior_shift"`` section,
        `inference.prior_shift`) is added to the tempered logits in every method.

    Returns
    -------
    Prediction
    """
    novelty_model = _novelty_model(model, novelty)
    temperature = check_temperature(getattr(model, "temperature", 1.0) if temperature is None else temperature)
    shift = logit_shift(model)
    net, guide = resolve(model, guide)
    spec = check_method(method, T)
    T = method_draws(spec, T, bayesian=guide is not None)
    seed = check_seed(seed)
    tile = check_int(tile, "tile", TILE_ALIGN)
    if tile % TILE_ALIGN:
        raise ValueError(f"tile must be a positive multiple of {TILE_ALIGN}, got {tile!r}")
    x = validated_image(image, ignore)
    if novelty_model is not None:
        why_not = novelty_model.too_small(x.shape) or novelty_model.too_ignored(ignore)
        if why_not:
            warnings.warn(why_not, UserWarning, stacklevel=2)
            novelty_model = None
    device = resolve_device(device)
    net.to(device)
    if guide is not None:
        guide.to(device)

    height, width = x.shape
    padded = pad_to_grid(model_input(x, getattr(model, "input_transform", None)))  # the net's units
    if progress is None:
        progress = max(padded.shape) > tile
    if device.type == "cpu" and net.norm != "group":  # tiles do not change the result
        fastest = spec.cpu_tile if guide is not None and spec.cpu_tile else CPU_TILE  # a twin: one pass
        tile = min(tile, fastest)
    margin = tile_margin(net, spec.extra_margin if guide is not None else 0)
    boxes = tile_boxes(padded.shape, tile, margin)
    features = None if novelty_model is None else BlockSums(padded.shape, 2 * net.hidden, novelty_model.block_px)
    sums = np.zeros((2,) + padded.shape, dtype=np.float64)  # sums over draws of p_t and H[p_t]
    with eval_mode(net), torch.inference_mode():
        mean_pass = None if features is None or guide is None else mean_weights(net, guide)
        tile_maps = None if guide is None or spec.sampling else spec.prepare(model, guide, temperature, device)
        if guide is None or not spec.sampling:
            chunks, n_chunks = [None], 1
        else:
            chunks = weight_chunks(net, guide, T, seed, chunk=DRAW_CHUNK, device=device)
            n_chunks = -(-T // DRAW_CHUNK)
        bar = tqdm(total=len(boxes) * n_chunks, desc="tiles", unit="tile", disable=not progress)
        for i, draws in enumerate(chunks):
            if guide is None:
                passes = [fuse_weights(net)]
            elif spec.sampling:
                passes = _fused_passes(net, draws, _draws_per_pass(device, tile + 2 * margin, net.hidden))
            for (r0, r1, c0, c1), (ir0, ir1, ic0, ic1) in boxes:
                block = torch.from_numpy(padded[ir0:ir1, ic0:ic1]).to(device)[None, None]  # (1, 1, h, w)
                core = (slice(r0 - ir0, r1 - ir0), slice(c0 - ic0, c1 - ic0))
                target = sums[:, r0:r1, c0:c1]  # (2, h_core, w_core), a view
                low = None
                if guide is not None and not spec.sampling:
                    prob, alea = tile_maps(block)  # (h, w) each
                    target[0], target[1] = prob[core].cpu().numpy(), alea[core].cpu().numpy()
                else:
                    low = _add_draws(passes, block, core, target, temperature, shift,
                                     bottleneck=features is not None and guide is None and i == 0)
                if features is not None and i == 0:
                    low = low if low is not None else fused_bottleneck(mean_pass, block)
                    low_core = (slice((r0 - ir0) // 2, (r1 - ir0) // 2), slice((c0 - ic0) // 2, (c1 - ic0) // 2))
                    features.add(low[0][(slice(None),) + low_core], r0 // 2, c0 // 2)  # (2h, h_core/2, w_core/2)
                bar.update(1)
        bar.close()
    sums /= T if spec.sampling or guide is None else 1  # means, in place
    prob = sums[0, :height, :width].astype(np.float32)
    aleatoric = sums[1, :height, :width].astype(np.float32)
    del sums  # (2, H, W) float64: freed before the entropies are formed
    entropy = binary_entropy(torch.from_numpy(prob).double()).numpy()
    epistemic = np.maximum(entropy - aleatoric, 0.0).astype(np.float32)
    if guide is None:
        epistemic[:] = 0.0
    aleatoric = (entropy - epistemic).astype(np.float32)  # exact split: entropy = aleatoric + epistemic
    ignored = np.zeros(x.shape, bool) if ignore is None else np.array(ignore, dtype=bool)
    result = Prediction(prob=prob, entropy=entropy.astype(np.float32), aleatoric=aleatoric, epistemic=epistemic,
                        T=T, method=spec.name if guide is not None else "deterministic", ignore=ignored)
    if novelty_model is not None:
        score, _, block_map = novelty_model.score(features.means(), x, ignore=ignored)
        result.novelty, result.is_novel = float(score), bool(score > novelty_model.threshold)
        result.novelty_map = novelty_model.expand(block_map, x.shape)
    return result


def _novelty_model(model, novelty) -> NoveltyModel | None:
    """The `NoveltyModel` that ``predict(model, ..., novelty=novelty)`` uses, or None."""
    if novelty is False:
        return None
    if novelty is None or novelty is True:
        novelty = getattr(model, "novelty", None)  # a FitResult's
        if novelty is None:
            return None
    if isinstance(novelty, NoveltyModel):
        return novelty
    if isinstance(novelty, dict):
        return NoveltyModel.from_state_dict(novelty)
    raise TypeError(f"novelty must be a NoveltyModel, its state dict or a bool, got {type(novelty).__name__}")


def _draws_per_pass(device: torch.device, side: int, hidden: int) -> int:
    """How many draws one forward pass evaluates: 1 on the CPU, a memory budget's worth on CUDA.

    A pass over ``k`` draws holds about six ``k * hidden``-channel float32 maps of the input tile
    (``side`` px, margins included).
    """
    if device.type != "cuda":
        return 1
    return max(1, CUDA_PASS_BYTES // (6 * hidden * side * side * 4))


def _fused_passes(net, draws: dict, k: int) -> list[FusedWeights]:
    """The draws ``{site: (T, *shape)}`` folded with ``net``'s norms (in one call), in groups of
    ``k`` per pass: each group a view of the folded weights (`FusedWeights` stacks draws along
    the output channels, so draws ``[a, b)`` are rows ``[a o, b o)`` of every layer)."""
    fw = fuse_weights(net, draws)
    return [_draw_range(fw, t, min(t + k, fw.k)) for t in range(0, fw.k, k)]


def _draw_range(fw: FusedWeights, a: int, b: int) -> FusedWeights:
    """Draws ``[a, b)`` of ``fw`` as a `FusedWeights` of ``b - a`` draws (views, no copy)."""
    def rows(t):
        if t is None:
            return None
        per_draw = t.shape[0] // fw.k
        return t[a * per_draw:b * per_draw]
    convs = {name: (rows(w), rows(bias)) for name, (w, bias) in fw.convs.items()}
    norms = None if fw.group_norms is None else {
        name: (groups // fw.k * (b - a), rows(gamma), rows(beta), eps)
        for name, (groups, gamma, beta, eps) in fw.group_norms.items()}
    return FusedWeights(k=b - a, hidden=fw.hidden, n_classes=fw.n_classes, convs=convs, group_norms=norms)


def _add_draws(passes: list[FusedWeights], x: torch.Tensor, core: tuple[slice, slice], target: np.ndarray,
               temperature: float = 1.0, shift: float = 0.0, bottleneck: bool = False):
    """Add ``p_t`` and ``H[p_t]`` of every draw in ``passes`` on the ``core`` of tile ``x`` to ``target``.

    ``x``: (1, 1, h, w); ``target``: float64 (2, h_core, w_core), updated in draw order (one
    draw per pass on the CPU, so the sums do not depend on how the draws are chunked), with
    ``H[sigma(z)] = softplus(z) - z sigma(z)`` computed in float64, ``z`` the logits divided by
    ``temperature`` plus ``shift`` (the prior-shift correction).  Returns the first pass's
    bottleneck map (1, k*2h, h/2, w/2) with ``bottleneck``, else None.
    """
    acc = torch.from_numpy(target).to(x.device)  # the numpy view itself on the CPU
    low = None
    for i, fw in enumerate(passes):
        if bottleneck and i == 0:
            z, low = fused_logits(fw, x, return_bottleneck=True)
        else:
            z = fused_logits(fw, x)
        z = z[0, :, 0][(slice(None),) + core].double()  # (k, h_core, w_core)
        if temperature != 1.0:
            z = z / temperature
        if shift != 0.0:
            z = z + shift
        p = torch.sigmoid(z)
        acc[0] += p.sum(0)
        acc[1] += (torch.nn.functional.softplus(z, threshold=50.0) - z * p).sum(0)
    if acc.device.type != "cpu":
        target[...] = acc.cpu().numpy()
    return low


def validated_image(image, ignore=None, *, remedy: str = "mark them in ignore") -> np.ndarray:
    """``image`` as a finite float32 (H, W) array, a copy.

    Parameters
    ----------
    image : array_like or Tensor, shape (H, W)
        Real numbers.
    ignore : array_like of bool, shape (H, W), optional
        Pixels allowed to be non-finite or fill values (magnitude above
        `io.fitsio.MAX_ABS_ELECTRONS`, e.g. 1e30); they are replaced by the median of the other
        pixels.
    remedy : str
        How the caller's user fixes such pixels, the end of the error message (e.g. a function
        without ``ignore`` names its own way).

    Raises
    ------
    ValueError
        Not 2-D, empty, ``ignore`` of another shape, non-finite or fill-value pixels outside
        ``ignore`` (the message gives the first one's row and column), or every pixel ignored
        or non-finite (nothing to predict: not a frame without cosmic rays).
    TypeError
        Non-real dtype.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    x = np.asarray(image)
    if x.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"image is empty (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"image must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)  # a copy
    bad = ~np.isfinite(x) | (np.abs(x) > MAX_ABS_ELECTRONS)
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != x.shape:
            raise ValueError(f"ignore has shape {ignore.shape}, image has {x.shape}")
        unexplained = bad & ~ignore
    else:
        unexplained = bad
    if unexplained.any():
        row, col = np.argwhere(unexplained)[0]
        raise ValueError(f"image has {int(unexplained.sum())} non-finite or fill-value pixel(s) "
                         f"(|value| > {MAX_ABS_ELECTRONS:.0e} e-) not in ignore (first at row {row}, "
                         f"column {col}, value {x[row, col]:.3g}); {remedy}")
    if bad.all() or (ignore is not None and ignore.all()):
        raise ValueError(f"every pixel of the {x.shape[0]}x{x.shape[1]} image is non-finite, a fill value or "
                         "ignored: nothing to predict")
    if bad.any():
        x[bad] = np.median(x[~bad])
    return x
