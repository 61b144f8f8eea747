"""In what unit does deepCR's ``decam`` model want its input?  An experiment on real frames.

deepCR's model zoo says ADU ("calibrated images in the original unit (adu)", DECam Note 2); the
DECam spec records ``deepcr_input_unit = "ADU"``.  This script checks it on the two real
ground-based frames reachable offline, against astroscrappy (LACosmic), the tool astronomers
trust on such frames:

* ``gmos.fits`` (astroscrappy's test data: Gemini GMOS-S, gain 1.933 e-/ADU, read noise 4.24 e-,
  reduced, in ADU);
* ``a8280271.fits`` (ccdproc's test data: SAAO 1.0 m raw frame, GAIN 1.9, RDNOISE 5.0; the
  overscan median of BIASSEC is subtracted and TRIMSEC kept, as a calibration would).

Each frame goes into the ``decam`` model (the deterministic twin of deepCR's weights, through
`cosmiq_pyro.deepcr.model.deepCR`) in ADU multiplied by a scale ``s``: ``s = gain`` is the frame
in electrons, ``s = gain / 4.0`` the frame in DECam ADU (electrons over the DECam spec's gain).  Printed per frame and scale: pixels flagged (p > 0.5), astroscrappy's pixels found
(recall) and flagged pixels farther than 2 px from any astroscrappy pixel ("elsewhere").

Run::

    OMP_NUM_THREADS=1 python benchmarks/decam_input_unit.py
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from scipy import ndimage  # noqa: E402

SCALES = (0.25, 0.5, "decam-adu", 1.0, "gain", 4.0)


def _section(text):
    """FITS section '[x0:x1, y0:y1]' (1-based, inclusive) -> numpy slices (rows, columns)."""
    (x0, x1), (y0, y1) = (map(int, part.split(":")) for part in text.strip(" []").split(","))
    return slice(y0 - 1, y1), slice(x0 - 1, x1)


def frames():
    import astroscrappy
    import ccdproc

    gmos = Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits"
    with fits.open(gmos) as hdul:
        sci = next(h for h in hdul if h.data is not None and h.data.ndim == 2)
        yield "gmos.fits (GMOS-S)", sci.data.astype(np.float32), 1.933, 4.24
    saao = Path(ccdproc.__file__).parent / "tests" / "data" / "a8280271.fits"
    with fits.open(saao) as hdul:
        header, raw = hdul[0].header, hdul[0].data.astype(np.float32)
    bias = float(np.median(raw[_section(header["BIASSEC"])]))
    yield "a8280271.fits (SAAO 1.0 m)", raw[_section(header["TRIMSEC"])] - bias, header["GAIN"], header["RDNOISE"]


def main():
    import astroscrappy
    import torch

    from cosmiq_pyro.deepcr.model import deepCR
    from cosmiq_pyro.instruments import get_instrument

    decam_gain = get_instrument("DECam").detector.gain_e_per_adu

    torch.set_num_threads(1)
    model = deepCR(mask="decam")
    print("| frame | input scale | flagged px | astroscrappy px | recall of astroscrappy | flagged elsewhere |")
    print("|---|---|---|---|---|---|")
    for name, adu, gain, read_noise in frames():
        reference, _ = astroscrappy.detect_cosmics(adu, gain=gain, readnoise=read_noise)
        near = ndimage.binary_dilation(reference, iterations=2)
        for scale in SCALES:
            s = {"gain": gain, "decam-adu": gain / decam_gain}.get(scale, scale)
            flagged = model.clean(adu * np.float32(s), threshold=0.5, inpaint=False).astype(bool)
            recall = (flagged & reference).sum() / max(reference.sum(), 1)
            label = {"gain": f"x {s:.3g} (electrons)", "decam-adu": f"x {s:.3g} (DECam ADU: e- / {decam_gain:g})",
                     1.0: "x 1 (the camera's ADU)"}.get(scale, f"x {s:g}")
            print(f"| {name} | {label} | {flagged.sum()} | {reference.sum()} | {recall:.2f} | "
                  f"{(flagged & ~near).sum()} |")


if __name__ == "__main__":
    main()
