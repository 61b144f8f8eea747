"""Reading and writing: FITS frames (`fitsio`), checkpoints (`checkpoint`), atomic files (`atomic`)."""

__all__ = []
