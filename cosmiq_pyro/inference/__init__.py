"""Algorithms: fitting (`fit`: SVI and the deterministic loop) and Monte Carlo prediction
(`predictive`: tiling, posterior draws, `Prediction`)."""
