"""Algorithms on the models: fitting (`fit`: SVI and the deterministic loop; `objective`: the
scaled ELBO; `runner`: resume, history and checkpoints of a run), Monte Carlo prediction
(`predictive`: tiling, posterior draws, `Prediction`), `temperature` and `novelty`."""

__all__ = []
