"""Small helpers every layer may use (the lowest floor): argument checks and torch utilities."""

__all__ = []
