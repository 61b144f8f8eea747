"""Evaluation: metrics (numpy only), comparison studies, peers (deepCR, LACosmic), plots and
the ArviZ bridge for the weight posterior."""

__all__ = []
