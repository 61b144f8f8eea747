"""Reading and writing: FITS frames (`fitsio`), checkpoints (`checkpoint`), atomic files (`atomic`),
file digests (`digest`)."""

__all__ = []
