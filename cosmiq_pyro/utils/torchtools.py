"""Device choice shared by fitting and prediction."""
from __future__ import annotations

import torch


def resolve_device(device=None) -> torch.device:
    """``device`` as a `torch.device`; None -> CUDA when available, else CPU.

    Accepts deepCR's spellings too: ``"CPU"`` and ``"GPU"`` (case-insensitive).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str) and device.lower() in ("cpu", "gpu"):
        device = "cpu" if device.lower() == "cpu" else "cuda"
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or None, got {device!r}") from None
