"""deepCR-compatible API: ``deepCR(mask=...).clean(...)`` (`model`) and ``train(...)`` (`training`)."""
from .model import deepCR
from .training import train

__all__ = ["deepCR", "train"]
