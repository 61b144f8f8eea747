"""Tiles: the one place that pads images, derives a network's tile margin and cuts overlapping tiles.

A fully convolutional net's output at a pixel depends only on the input within its
receptive-field radius ``r`` (px).  An image therefore runs in tiles whose input boxes are the
core boxes widened by a margin ``>= r``; the margin is dropped from each output, so the tiled maps
equal the untiled ones to float rounding.  The margin is derived from the net's layers
(`receptive_radius`) and rounded up to the pooling grid `TILE_ALIGN` (`tile_margin`), so that
every tile's input box starts on the grid and its 2x2 pooling cells are the image's own.

Also here: running a function over tiles in threads (`run_each`) and joblib's ``n_jobs``
convention (`resolve_n_jobs`).
"""
from __future__ import annotations

import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from torch import nn

__all__ = ["TILE_ALIGN", "pad_to_grid", "receptive_radius", "tile_margin", "tile_boxes", "resolve_n_jobs",
           "run_each"]

#: Images are padded to a multiple of this and tiles start on multiples of it (the U-Net's 2x2
#: pooling grid stays the image's; deepCR's 2-level nets pool once, so 2 would do, and 4 is what
#: every product so far was made with).
TILE_ALIGN = 4

# Layers that do not widen the receptive field (pointwise in space).
_POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.Identity, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.Dropout,
              nn.Dropout2d, nn.GroupNorm)


def pad_to_grid(image: np.ndarray, align: int = TILE_ALIGN) -> np.ndarray:
    """``image`` (..., H, W) mirrored (``numpy.pad(mode="symmetric")``) at the bottom and right up
    to a multiple of ``align`` in both sizes: what the predictive runs the network on before
    cropping the maps back to (H, W)."""
    height, width = image.shape[-2:]
    pad = [(0, 0)] * (image.ndim - 2) + [(0, -height % align), (0, -width % align)]
    return np.pad(image, pad, mode="symmetric")


def receptive_radius(net: nn.Module) -> int:
    """Receptive-field radius (px) of a fully convolutional U-Net, from its layers.

    The layers are read in registration order, which for the package's U-Nets (`UNet2Sigmoid`,
    the inpainting net) is the forward order along the longest path (encoder, bottleneck,
    decoder; the skip connections are shorter).  With ``s`` the layer's input scale (product of
    the pooling strides before it, divided by the transposed convolutions' strides), each layer
    adds

    * a convolution of kernel ``k``, dilation ``d``, 'same' padding, stride 1:
      ``(k - 1) / 2 * d * s`` px;
    * a pooling of kernel ``k``, stride ``q``: ``(k - 1) * s`` px (the pooling cell's other
      pixels), then ``s -> q s``;
    * a transposed convolution of kernel ``k``, stride ``q``: ``s -> s / q``, then
      ``max(k - q, 0) * s`` px (none when kernel = stride: each output reads one input pixel).

    Normalisations and activations add nothing (group norm's statistics span the whole input:
    the caller treats such nets apart).  For `UNet2Sigmoid`: ``2 + 1 + 4 + 0 + 2 + 0 = 9`` px
    (two 3x3 convs, the pool, two 3x3 convs at half scale, the up-sampling, two 3x3 convs, the
    1x1 head).

    Raises
    ------
    ValueError
        A layer whose reach this rule does not know (strided or unpadded convolution, any other
        spatial layer).
    """
    radius, scale = 0.0, 1.0
    for name, layer in net.named_modules():
        if list(layer.children()):
            continue  # containers: their leaves are visited in turn
        if isinstance(layer, nn.ConvTranspose2d):
            k, q = layer.kernel_size[0], layer.stride[0]
            scale /= q
            radius += max(k - q, 0) * scale
        elif isinstance(layer, nn.Conv2d):
            k, d = layer.kernel_size[0], layer.dilation[0]
            if layer.stride != (1, 1) or layer.padding != ((k - 1) // 2 * d,) * 2 or k % 2 == 0:
                raise ValueError(f"layer {name!r} ({layer}) is not a stride-1 'same' convolution; "
                                 "its receptive field is not derived here")
            radius += (k - 1) // 2 * d * scale
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            k, q = _pair(layer.kernel_size), _pair(layer.stride)
            radius += (k - 1) * scale
            scale *= q
        elif not isinstance(layer, _POINTWISE):
            raise ValueError(f"layer {name!r} ({type(layer).__name__}) has an unknown receptive field")
    return int(np.ceil(radius))


def _pair(value) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


def tile_margin(net: nn.Module, extra: int = 0, align: int = TILE_ALIGN) -> int:
    """Margin (px) of real neighbours around each tile: ``receptive_radius(net) + extra`` rounded
    up to a multiple of ``align`` (so input boxes start on the pooling grid).  ``extra``: what a
    predictive method needs beyond the net's own reach (0 for Monte Carlo)."""
    reach = receptive_radius(net) + int(extra)
    return -(-reach // align) * align


def _balanced_step(length: int, tile: int, align: int) -> int:
    """Tile step along an axis of ``length`` px: as few tiles of at most ``tile`` px as cover it,
    of (nearly) equal size, a multiple of ``align`` (no thin remainder tile to pay margins for)."""
    n = -(-length // tile)
    return -(-length // (n * align)) * align


def tile_boxes(shape, tile: int, margin: int, align: int = TILE_ALIGN):
    """Core boxes ``(r0, r1, c0, c1)`` covering ``shape`` and their input boxes widened by
    ``margin`` px (clipped to the image): a list of ``(core, input)``.

    As few cores of side at most ``tile`` as cover each axis, of nearly equal size, starting on
    multiples of ``align`` (a 1024 px side with ``tile=384`` runs as three 344 px tiles).
    ``tile`` at least ``align``; ``margin`` a multiple of ``align`` keeps input boxes on the grid.
    """
    height, width = shape
    if tile < align:
        raise ValueError(f"tile must be at least {align} px, got {tile!r}")
    row_step, col_step = _balanced_step(height, tile, align), _balanced_step(width, tile, align)
    boxes = []
    for r0 in range(0, height, row_step):
        for c0 in range(0, width, col_step):
            r1, c1 = min(r0 + row_step, height), min(c0 + col_step, width)
            boxes.append(((r0, r1, c0, c1), (max(r0 - margin, 0), min(r1 + margin, height),
                                             max(c0 - margin, 0), min(c1 + margin, width))))
    return boxes


def resolve_n_jobs(n_jobs) -> int:
    """joblib's convention: a positive count, or ``-1`` for every CPU this process may use
    (``-2`` for all but one, and so on)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a positive int or a negative int (-1 = all cores), got {n_jobs!r}")
    if n_jobs > 0:
        return int(n_jobs)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores + 1 + int(n_jobs))


def run_each(function, items: list, workers: int) -> None:
    """Call ``function(item)`` for every item: in this thread when ``workers == 1`` or there is one
    item, else in a pool of ``min(workers, len(items))`` threads.  Results are dropped (``function``
    writes its own); the first exception is raised after the pool has finished."""
    if workers == 1 or len(items) == 1:
        for item in items:
            function(item)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            list(pool.map(function, items))
