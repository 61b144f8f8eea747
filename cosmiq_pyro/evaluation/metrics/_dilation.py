"""Disk dilation of a thresholded predicted mask, as a score map (deepCR's ``dilate=True``)."""
from __future__ import annotations

from typing import Optional

import numpy as np


def _disk_offsets(radius: int) -> list:
    """Offsets (dy, dx) of skimage's ``disk(radius)``: dy^2 + dx^2 <= radius^2."""
    r = np.arange(-radius, radius + 1)
    return [(int(dy), int(dx)) for dy in r for dx in r if dy * dy + dx * dx <= radius * radius]


def _dilated_score(p: np.ndarray, ignore: Optional[np.ndarray], radius: int) -> np.ndarray:
    """Score whose threshold map equals the dilated thresholded mask.

    ``dilate(p > t and not ignore) == (q > t)`` for ``q = max over disk(radius) of p`` with
    ignored pixels set to -inf, because a pixel is in the dilated mask iff some pixel of its
    disk neighbourhood passes the threshold. Dilation runs over the last two axes only,
    so frames of an (N, H, W) stack never leak into each other; pixels outside a frame
    contribute nothing.
    """
    src = p if ignore is None else np.where(ignore, np.array(-np.inf, p.dtype), p)
    q = src.copy()
    H, W = p.shape[-2:]
    for dy, dx in _disk_offsets(radius):
        if (dy, dx) == (0, 0) or abs(dy) >= H or abs(dx) >= W:
            continue
        dst = (Ellipsis, slice(max(0, -dy), H - max(0, dy)), slice(max(0, -dx), W - max(0, dx)))
        nb = (Ellipsis, slice(max(0, dy), H + min(0, dy)), slice(max(0, dx), W + min(0, dx)))
        np.maximum(q[dst], src[nb], out=q[dst])
    return q
