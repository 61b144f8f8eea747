"""Kept for deepCR users' imports: ``from cosmiq_pyro.model import deepCR``
(the facade lives in `cosmiq_pyro.deepcr.model`)."""
from .deepcr.model import deepCR

__all__ = ["deepCR"]
