"""Is an existing product whole?  `product_damage` checks a product file's structure and checksums.

Every HDU of a product carries CHECKSUM and DATASUM (FITS checksum convention, Seaman et al.
2002: the ones' complement sum of the HDU's 32-bit words is -0; DATASUM is the sum of the data
words alone), written by `io.fitswrite.write_hdulist_atomic`.  A product is judged damaged when
it cannot be read to its end, lacks a map its provenance calls for, or an HDU's checksums do not
verify; resume (`app.batch`) then makes it again.  Tile-compressed maps are verified as stored
(their binary tables), so no pixel is decompressed.
"""
from __future__ import annotations

import warnings
from collections import defaultdict

from astropy.io import fits

from .products import product_maps
from .provenance import Provenance

__all__ = ["product_damage"]


def product_damage(path) -> str:
    """Why the product at ``path`` is damaged (one line), or "" when it is whole.

    Whole means: every HDU reads to its end without a warning; the primary header holds the
    provenance keywords; every input extension (EXTVER) has the maps its provenance calls for
    (`products.product_maps`); every HDU carries CHECKSUM and DATASUM and both verify.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns (not raises) on truncation and bad padding
            with fits.open(path, memmap=False, disable_image_compression=True, lazy_load_hdus=False) as hdul:
                try:
                    provenance = Provenance.from_header(hdul[0].header)
                except ValueError as err:
                    return str(err)
                versions = defaultdict(set)
                for index, hdu in enumerate(hdul):
                    if index:
                        versions[hdu.ver].add(hdu.name)
                    where = f"HDU {index} ({hdu.name})"
                    if "CHECKSUM" not in hdu.header or "DATASUM" not in hdu.header:
                        return f"{where} has no CHECKSUM/DATASUM"
                    if hdu.verify_datasum() != 1:
                        return f"{where}: DATASUM does not match its data"
                    if hdu.verify_checksum() != 1:
                        return f"{where}: CHECKSUM does not match"
    except (OSError, ValueError, TypeError, IndexError, EOFError, Warning) as err:
        return f"unreadable: {' '.join(str(err).split())[:200] or type(err).__name__}"
    if not versions:
        return "no maps (truncated?)"
    wanted = set(product_maps(provenance))
    for ver, names in sorted(versions.items()):
        missing = sorted(wanted - names)
        if missing:
            return f"extension {ver} lacks {', '.join(missing)}"
    return ""
