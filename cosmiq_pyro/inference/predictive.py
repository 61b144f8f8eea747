"""Monte Carlo prediction: per-pixel CR probability and uncertainty maps.

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
``z_t -> z_t / T_c``, so all maps describe the tempered predictive.

The ``T`` weight draws are made once per image with `pyro.infer.Predictive` (`models.bayesian.draw_weights`).
Their batch norms are then folded into the convolutions and every tile runs one fused forward
pass per draw (`models.fused`), keeping running sums of ``p_t`` and ``H[p_t]``, so memory does not
grow with ``T`` and all tiles see the same draws.  `models.bayesian.probs_given_weights` (one pass of the
Pyro model per draw) is the reference this fast path is tested against.

Images run in overlapping tiles: each tile is extended by a margin at least the network's
receptive-field radius (9 px) and the margin is discarded, so the tiled maps equal the untiled
ones to float rounding (for batch norm or no norm; group norm's statistics span the whole input,
so with it tiles change the result slightly and only the caller's ``tile`` is used).  On the CPU
tiles are at most `CPU_TILE` px, which keeps a tile's activations in the processor's cache.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..io.fitsio import MAX_ABS_ELECTRONS
from ..models.bayesian import draw_weights
from ..models.fused import FusedWeights, fuse_weights, fused_bottleneck, fused_logits
from .novelty import BlockSums, NoveltyModel, mean_weights
from ..models.registry import resolve
from ..utils.checks import check_int, check_seed
from .temperature import check_temperature
from ..utils.torchtools import binary_entropy, eval_mode, resolve_device, seeded

TILE_MARGIN = 10  # px; >= the receptive-field radius (9 px) of UNet2Sigmoid, even (pooling grid)
#: Images are padded to a multiple of this and tiles start on multiples of it (even: the U-Net's
#: 2x2 pooling grid stays the image's).
TILE_ALIGN = 4
_ALIGN = TILE_ALIGN
#: Largest core tile side on the CPU (px).  Tiles are balanced (a 1024 px side runs as three
#: 344 px tiles), so an input tile is at most 404 px and each 32-channel activation at most
#: 21 MB: inside this machine's 32 MB L3 cache and below glibc's 32 MB mmap threshold (larger
#: buffers are mapped afresh, and page-faulted in, at every allocation).  Whole 1024 px tiles
#: ran 1.6x slower per pixel, 256 px tiles 1.07x (margins); see benchmarks/bench_predict.py.
CPU_TILE = 384
#: Draws evaluated together by one grouped-convolution pass on CUDA (memory budget per pass);
#: on the CPU one draw per pass is faster (oneDNN's grouped kernels are slower per draw here,
#: see benchmarks/bench_predict.py), so draws run one after another.
CUDA_PASS_BYTES = 2 * 1024 ** 3


@dataclass
class Prediction:
    """Per-pixel maps from `predict`, each float32 of shape (H, W).

    Attributes
    ----------
    prob : MC mean of the CR probability.
    entropy : binary entropy of ``prob`` (nats).
    aleatoric : mean over draws of each draw's binary entropy (nats).
    epistemic : ``entropy - aleatoric``, the mutual information (nats, >= 0).
    T : number of posterior draws (1 for the deterministic twin).
    novelty : how unlike the model's training frames the image is (float, higher = less alike;
        1 = the 95th percentile of held-out in-distribution frames), `inference.novelty`; None
        when the model carries no novelty model or the image is smaller than one novelty block.
    novelty_map : the per-block (64x64 px) novelty on each pixel (float32, image shape; 1 = the
        95th percentile of in-distribution blocks), or None.
    is_novel : ``novelty`` above the threshold stored with the model (a 5 % false-alarm rate on
        held-out in-distribution frames), or None.
    """

    prob: np.ndarray
    entropy: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    T: int
    novelty: float | None = None
    novelty_map: np.ndarray | None = None
    is_novel: bool | None = None

    def mask(self, threshold: float = 0.5) -> np.ndarray:
        """Boolean CR mask ``prob > threshold``."""
        return self.prob > threshold

    def __repr__(self) -> str:
        return (f"Prediction(shape={self.prob.shape}, T={self.T}, CR pixels (p>0.5)={int(self.mask().sum())}, "
                f"mean entropy={float(self.entropy.mean()):.4g} nats, "
                f"mean epistemic={float(self.epistemic.mean()):.4g} nats"
                + ("" if self.novelty is None else f", novelty={self.novelty:.3g}, is_novel={self.is_novel}") + ")")


def predict(model, image, *, guide=None, T: int = 16, ignore=None, seed: int = 0, tile: int = 1024,
            device=None, progress: bool | None = None, novelty=None, temperature: float | None = None) -> Prediction:
    """CR probability, entropy, aleatoric and epistemic maps of one image.

    Parameters
    ----------
    model : UNet2SigmoidVI, UNet2Sigmoid or FitResult
        A VI model needs its ``guide`` (given here or inside the `FitResult`); a plain net is
        the deterministic twin (one pass, ``T = 1``, epistemic all zero).
    image : array_like, shape (H, W)
        In electrons (what the model was trained on).  Any size.
    T : int
        Posterior draws for the Bayesian model.
    ignore : array_like of bool, shape (H, W), optional
        Pixels to exclude (bad pixels, saturation).  Their maps are still computed; non-finite
        pixels are allowed only here (they are replaced by the median of the finite pixels).
    seed : int
        Seed of the posterior draws: the same seed gives the same maps.
    tile : int
        Largest core tile side in px (a multiple of 4); larger images run in tiles with a
        ``TILE_MARGIN`` px overlap.  On the CPU, tiles are at most `CPU_TILE` px (faster; the
        maps are the same to float rounding), except for group-norm nets, whose maps depend on
        the tiling.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    progress : bool, optional
        tqdm bar over tiles; default: shown when the image is larger than one ``tile``.
    novelty : NoveltyModel, dict or bool, optional
        The novelty model (or its state dict) scoring the image against the training frames:
        default (None or True) the one a `FitResult` carries (``.novelty``); False skips it.
        Its features are the bottleneck map of the same pass (deterministic twin) or of one
        encoder pass with the posterior means (VI), so it adds a few percent to the time.
        An image smaller than one novelty block (64x64 px) gets none, with a warning saying so.
    temperature : float, optional
        Divide every logit by this before the sigmoid (> 0).  Default: the `FitResult`'s
        ``temperature`` (fitted on validation data at the end of training), 1 for a bare net.

    Returns
    -------
    Prediction
    """
    novelty_model = _novelty_model(model, novelty)
    temperature = check_temperature(getattr(model, "temperature", 1.0) if temperature is None else temperature)
    net, guide = resolve(model, guide)
    T = check_int(T, "T", 1)
    seed = check_seed(seed)
    tile = check_int(tile, "tile", _ALIGN)
    if tile % _ALIGN:
        raise ValueError(f"tile must be a positive multiple of {_ALIGN}, got {tile!r}")
    x = validated_image(image, ignore)
    if novelty_model is not None and novelty_model.too_small(x.shape):
        warnings.warn(novelty_model.too_small(x.shape), UserWarning, stacklevel=2)
        novelty_model = None
    if guide is None:
        T = 1
    device = resolve_device(device)
    net.to(device)
    if guide is not None:
        guide.to(device)

    height, width = x.shape
    padded = pad_to_grid(x)
    maps = np.zeros((2,) + padded.shape, dtype=np.float32)  # prob, aleatoric
    if progress is None:
        progress = max(padded.shape) > tile
    if device.type == "cpu" and net.norm != "group":  # tiles do not change the result
        tile = min(tile, CPU_TILE)
    tiles = list(_tiles(padded.shape, tile))
    features = None if novelty_model is None else BlockSums(padded.shape, 2 * net.hidden, novelty_model.block_px)
    with eval_mode(net), torch.inference_mode():
        if guide is None:
            passes = [fuse_weights(net)]
        else:
            draws = _draw(net, guide, T, seed, device)
            passes = _fused_passes(net, draws, _draws_per_pass(device, tile, net.hidden))
            if features is not None:  # the posterior means' encoder gives the novelty features
                mean_pass = mean_weights(net, guide)
        for (r0, r1, c0, c1), (ir0, ir1, ic0, ic1) in tqdm(tiles, desc="tiles", unit="tile",
                                                           disable=not progress):
            block = torch.from_numpy(padded[ir0:ir1, ic0:ic1]).to(device)[None, None]  # (1, 1, h, w)
            core = (slice(r0 - ir0, r1 - ir0), slice(c0 - ic0, c1 - ic0))
            prob, alea, *low = _mc_moments(passes, block, core, T, bottleneck=features is not None and guide is None,
                                           temperature=temperature)
            maps[0, r0:r1, c0:c1] = prob.cpu().numpy()
            maps[1, r0:r1, c0:c1] = alea.cpu().numpy()
            if features is not None:
                low = low[0] if low else fused_bottleneck(mean_pass, block)
                low_core = (slice((r0 - ir0) // 2, (r1 - ir0) // 2), slice((c0 - ic0) // 2, (c1 - ic0) // 2))
                features.add(low[0][(slice(None),) + low_core], r0 // 2, c0 // 2)  # (2h, h_core/2, w_core/2)
    prob = maps[0, :height, :width]
    aleatoric = maps[1, :height, :width]
    entropy = binary_entropy(torch.from_numpy(prob).double()).numpy()
    epistemic = np.maximum(entropy - aleatoric, 0.0).astype(np.float32)
    if guide is None:
        epistemic[:] = 0.0
    aleatoric = (entropy - epistemic).astype(np.float32)  # exact split: entropy = aleatoric + epistemic
    result = Prediction(prob=prob.copy(), entropy=entropy.astype(np.float32), aleatoric=aleatoric,
                        epistemic=epistemic, T=T)
    if novelty_model is not None:
        score, _, block_map = novelty_model.score(features.means(), x)
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


def pad_to_grid(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W) mirrored (``numpy.pad(mode="symmetric")``) at the bottom and right up to
    a multiple of `TILE_ALIGN` in both sizes: what `predict` runs the network on before cropping
    the maps back to (H, W)."""
    height, width = image.shape
    return np.pad(image, ((0, -height % _ALIGN), (0, -width % _ALIGN)), mode="symmetric")


def _draw(net, guide, T: int, seed: int, device: torch.device) -> dict:
    """``T`` posterior weight draws made with ``seed``, without touching the global RNG state."""
    with seeded(seed, device):
        return draw_weights(net, guide, T)


def _draws_per_pass(device: torch.device, tile: int, hidden: int) -> int:
    """How many draws one forward pass evaluates: 1 on the CPU, a memory budget's worth on CUDA.

    A pass over ``k`` draws holds about six ``k * hidden``-channel float32 maps of the input tile.
    """
    if device.type != "cuda":
        return 1
    side = tile + 2 * TILE_MARGIN
    return max(1, CUDA_PASS_BYTES // (6 * hidden * side * side * 4))


def _fused_passes(net, draws: dict, k: int) -> list[FusedWeights]:
    """The draws ``{site: (T, *shape)}`` folded with ``net``'s norms, in groups of ``k`` per pass."""
    T = len(next(iter(draws.values())))
    return [fuse_weights(net, {site: w[t:t + k] for site, w in draws.items()}) for t in range(0, T, k)]


def _mc_moments(passes: list[FusedWeights], x: torch.Tensor, core: tuple[slice, slice], T: int,
                bottleneck: bool = False, temperature: float = 1.0):
    """MC means of ``p_t`` and ``H[p_t]`` over the draws on the ``core`` of tile ``x``.

    ``x``: (1, 1, h, w); returns two float64 maps of the core's shape and, with ``bottleneck``,
    a third item: the first pass's bottleneck map (1, k*2h, h/2, w/2).  Running sums over the
    passes, with ``H[sigma(z)] = softplus(z) - z sigma(z)`` computed in float64, ``z`` the
    logits divided by ``temperature``.
    """
    sum_p = sum_h = 0.0
    low = None
    for i, fw in enumerate(passes):
        if bottleneck and i == 0:
            z, low = fused_logits(fw, x, return_bottleneck=True)
        else:
            z = fused_logits(fw, x)
        z = z[0, :, 0][(slice(None),) + core].double()  # (k, h_core, w_core)
        if temperature != 1.0:
            z = z / temperature
        p = torch.sigmoid(z)
        sum_p = sum_p + p.sum(0)
        sum_h = sum_h + (torch.nn.functional.softplus(z, threshold=50.0) - z * p).sum(0)
    return (sum_p / T, sum_h / T, low) if bottleneck else (sum_p / T, sum_h / T)


def _balanced_step(length: int, tile: int) -> int:
    """Tile step along an axis of ``length`` px: as few tiles of at most ``tile`` px as cover it,
    of (nearly) equal size, a multiple of `_ALIGN` (no thin remainder tile to pay margins for)."""
    n = -(-length // tile)
    return -(-length // (n * _ALIGN)) * _ALIGN


def _tiles(shape, tile: int):
    """Core boxes ``(r0, r1, c0, c1)`` covering ``shape`` and their input boxes with margins."""
    height, width = shape
    row_step, col_step = _balanced_step(height, tile), _balanced_step(width, tile)
    for r0 in range(0, height, row_step):
        for c0 in range(0, width, col_step):
            r1, c1 = min(r0 + row_step, height), min(c0 + col_step, width)
            yield (r0, r1, c0, c1), (max(r0 - TILE_MARGIN, 0), min(r1 + TILE_MARGIN, height),
                                     max(c0 - TILE_MARGIN, 0), min(c1 + TILE_MARGIN, width))


def validated_image(image, ignore=None) -> np.ndarray:
    """``image`` as a finite float32 (H, W) array, a copy.

    Parameters
    ----------
    image : array_like or Tensor, shape (H, W)
        Real numbers.
    ignore : array_like of bool, shape (H, W), optional
        Pixels allowed to be non-finite or fill values (magnitude above
        `io.fitsio.MAX_ABS_ELECTRONS`, e.g. 1e30); they are replaced by the median of the other
        pixels.

    Raises
    ------
    ValueError
        Not 2-D, empty, ``ignore`` of another shape, or non-finite or fill-value pixels outside
        ``ignore`` (the message gives the first one's row and column).
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
                         f"column {col}, value {x[row, col]:.3g}); mark them in ignore")
    if bad.any():
        x[bad] = np.median(x[~bad]) if (~bad).any() else 0.0
    return x
