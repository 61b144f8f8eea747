"""The top floor: the ``cosmiq`` command line (`cli`), the demo pipeline (`demo`) and FITS
products (`products`).  It translates options into calls of the layers below."""

__all__ = []
