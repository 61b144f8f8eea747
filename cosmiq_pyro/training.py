"""Kept for deepCR users' imports: ``from cosmiq_pyro.training import train``
(the facade lives in `cosmiq_pyro.deepcr.training`)."""
from .deepcr.training import DEFAULT_LR, train

__all__ = ["train", "DEFAULT_LR"]
