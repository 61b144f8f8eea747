"""Small torch helpers shared by every layer: device choice, eval mode, seeded RNG, entropy."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["resolve_device", "module_device", "eval_mode", "seeded", "binary_entropy"]


def resolve_device(device=None) -> torch.device:
    """``device`` as a `torch.device`; None -> CUDA when available, else CPU.

    Accepts deepCR's spellings too: ``"CPU"`` and ``"GPU"`` (case-insensitive).

    Raises
    ------
    ValueError
        Not a device name, or a CUDA device that this machine does not have (no CUDA, or
        ``cuda:N`` beyond ``torch.cuda.device_count()``).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str) and device.lower() in ("cpu", "gpu"):
        device = "cpu" if device.lower() == "cpu" else "cuda"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or None, got {device!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asked for, but torch finds no CUDA device here "
                             f"(torch {torch.__version__}, torch.cuda.is_available() is False); "
                             "use device='cpu' or leave it None")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def module_device(module: nn.Module) -> torch.device:
    """Device of ``module``'s first buffer or parameter (CPU when it has neither)."""
    for tensor in module.buffers():
        return tensor.device
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """``module`` in eval mode inside the block (batch-norm statistics untouched); its previous
    train/eval mode is restored afterwards (on error too).  Submodules' own modes are restored
    only as far as ``module.train(previous)`` does it."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextlib.contextmanager
def seeded(seed: int, device=None):
    """Run the block with torch's RNG seeded by ``seed``; the global RNG state (CPU, and the CUDA
    device when ``device`` is a CUDA device) is restored afterwards."""
    device = None if device is None else torch.device(device)
    with torch.random.fork_rng(devices=[device] if device is not None and device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Binary entropy in nats, elementwise, with ``0 log 0 = 0``:

    .. math:: H[p] = -p \\log p - (1 - p) \\log(1 - p).
    """
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))
