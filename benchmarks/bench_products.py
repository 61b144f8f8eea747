"""Product size, precision and speed of candidate encodings of the maps (issue 25, item 9).

Run::

    python benchmarks/bench_products.py [--maps maps1024.npz] [--out results.md]

Maps: the shipped model (ACS-WFC-VI, T = 16, seed 0) predicted on two simulated 1024 x 1024
ACS/WFC-like frames (`simulate.simulate_frame`, 500 s F606W: an EX field, seed 11, and a GC
field, seed 12; their hot pixels and bad columns passed as ``ignore``), cached in ``--maps``.
A 4096 x 2048 chip is tiled from the two predictions in four orientations each (as is, left-right,
up-down, rotated 180 degrees: no tile row repeats another's pixels in the same order, so no
compressor finds a repeat that a real chip would not have).  Predicting the whole chip would
take ~100 s per run here and give maps of the same statistics.

Candidates: the float maps as they are, lossless, as 16-bit scaled integers, or quantised with
the absolute step q = 3.9e-5 (every stored value within q/2 = 1.95e-5 of the computed one)
with and without subtractive dithering (fixed seed), each with a tile compressor of the FITS
tiled-image convention (one row per tile unless stated).  Each candidate writes one chip's product, PROB, ENTROPY, EPISTEMIC, NOVELTY (float32) and MASK
(uint8), with `write_hdulist_atomic` (checksums included), then reads every map back with astropy.
A chip with the mix of both fields is about the mean of their rows (``--field ex`` / ``gc`` use
one field's prediction in all eight tiles).
Reported: file size, the largest |stored - computed| of each float map, write and read time
(median of ``--repeats``; one process, one thread).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_maps(path: Path) -> None:
    import torch

    from cosmiq_pyro.data.simulate import simulate_frame
    from cosmiq_pyro.inference.predictive import predict
    from cosmiq_pyro.models.registry import load_model

    torch.set_num_threads(1)
    model = load_model("ACS-WFC-VI")
    out = {}
    for name, field, seed in (("ex", "EX", 11), ("gc", "GC", 12)):
        frame = simulate_frame(size=1024, field=field, seed=seed)
        p = predict(model, frame.image, T=16, ignore=frame.ignore, seed=0, progress=False)
        out.update({f"{name}_prob": p.prob, f"{name}_entropy": p.entropy, f"{name}_epistemic": p.epistemic,
                    f"{name}_ignore": frame.ignore, f"{name}_novelty": p.novelty_map})
    np.savez(path, **out)


def chip(maps, key: str, fields=("ex", "gc")) -> np.ndarray:
    """4096 x 2048 (W x H) from 1024 x 1024 predictions in four orientations each."""
    tiles = []
    for field in (fields * 2)[:2]:
        a = maps[f"{field}_{key}"]
        tiles += [a, a[:, ::-1], a[::-1, :], a[::-1, ::-1]]
    return np.block([tiles[0:4], [tiles[4], tiles[6], tiles[5], tiles[7]]])


def candidates():
    from astropy.io import fits

    from cosmiq_pyro.io.fitswrite import compressed_image_hdu

    def plain(name, data):
        return fits.ImageHDU(data, name=name)

    def lossless(kind):
        return lambda name, data: fits.CompImageHDU(data, name=name, compression_type=kind, quantize_level=0.0)

    def quantised(kind, method, step=3.9e-5):  # method -1: NO_DITHER, 2: SUBTRACTIVE_DITHER_2
        return lambda name, data: fits.CompImageHDU(data, name=name, compression_type=kind, quantize_level=-step,
                                                    quantize_method=method, dither_seed=1)

    def int16_scaled(name, data):  # x as round(x / top * 32767): step 3.05e-5 of the map's range
        top = 1.0 if name == "PROB" else float(np.nanmax(data)) or 1.0
        scaled = np.where(np.isnan(data), -32768, np.round(data / top * 32767)).astype(np.int16)
        hdu = fits.CompImageHDU(scaled, name=name, compression_type="RICE_1")
        hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = top / 32767, 0.0, -32768
        return hdu

    def ints(kind):
        return lambda name, data: fits.CompImageHDU(data, name=name, compression_type=kind)

    def tiled(kind, method, rows=16):
        return lambda name, data: fits.CompImageHDU(data, name=name, compression_type=kind, quantize_level=-3.9e-5,
                                                    quantize_method=method, dither_seed=1,
                                                    tile_shape=(rows, data.shape[1]))

    return {
        "float32, uncompressed (today)": (plain, plain),
        "lossless float32 GZIP_2; MASK GZIP_2": (lossless("GZIP_2"), ints("GZIP_2")),
        "int16 scaled, RICE_1; MASK RICE_1": (int16_scaled, ints("RICE_1")),
        "q dithered RICE_1; MASK RICE_1": (quantised("RICE_1", 2), ints("RICE_1")),
        "q NO_DITHER RICE_1; MASK RICE_1": (quantised("RICE_1", -1), ints("RICE_1")),
        "q dithered HCOMPRESS_1, 16-row tiles; MASK GZIP_2": (tiled("HCOMPRESS_1", 2), ints("GZIP_2")),
        "q dithered HCOMPRESS_1, 16-row tiles; MASK RICE_1 (chosen: compressed_image_hdu)":
            (lambda n, d: compressed_image_hdu(d, name=n, quantize_step=3.9e-5), lambda n, d: compressed_image_hdu(d, name=n)),
        "q dithered GZIP_2; MASK GZIP_2": (quantised("GZIP_2", 2), ints("GZIP_2")),
        "q NO_DITHER GZIP_1; MASK GZIP_1": (quantised("GZIP_1", -1), ints("GZIP_1")),
        "q NO_DITHER GZIP_2; MASK GZIP_2": (quantised("GZIP_2", -1), ints("GZIP_2")),
        "q NO_DITHER GZIP_2, 16-row tiles; MASK GZIP_2, 16-row tiles": (tiled("GZIP_2", -1), ints("GZIP_2")),
    }


def run(maps_path: Path, repeats: int, fields=("ex", "gc")) -> str:
    from astropy.io import fits

    from cosmiq_pyro.io.fitswrite import write_hdulist_atomic

    maps = dict(np.load(maps_path))
    full = {k: chip(maps, k.lower(), fields) for k in ("PROB", "ENTROPY", "EPISTEMIC", "NOVELTY")}
    ignore = chip(maps, "ignore", fields)
    for k in ("PROB", "ENTROPY", "EPISTEMIC"):
        full[k] = np.where(ignore, np.nan, full[k]).astype(np.float32)
    full["NOVELTY"] = full["NOVELTY"].astype(np.float32)
    mask = np.where(ignore, 2, full["PROB"] > 0.5).astype(np.uint8)
    lines = ["| encoding | size (MB) | max abs dp (PROB) | max abs d (ENTROPY, EPISTEMIC, NOVELTY) | write (s) | read (s) |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for label, (floats, ints) in candidates().items():
            path = Path(folder) / "chip_cosmiq.fits"
            writes, reads = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                hdul = fits.HDUList([fits.PrimaryHDU()] + [floats(k, v) for k, v in full.items()] + [ints("MASK", mask)])
                write_hdulist_atomic(hdul, path, overwrite=True)
                writes.append(time.perf_counter() - start)
                start = time.perf_counter()
                with fits.open(path) as back:
                    got = {h.name: np.array(h.data) for h in back[1:]}
                reads.append(time.perf_counter() - start)
            err = {k: float(np.nanmax(np.abs(got[k].astype(np.float64) - v))) for k, v in full.items()}
            assert np.array_equal(got["MASK"], mask), label
            assert all(np.array_equal(np.isnan(got[k]), np.isnan(v)) for k, v in full.items()), label
            lines.append(f"| {label} | {os.path.getsize(path) / 1e6:.1f} | {err['PROB']:.2e} | "
                         f"{err['ENTROPY']:.2e}, {err['EPISTEMIC']:.2e}, {err['NOVELTY']:.2e} | "
                         f"{statistics.median(writes):.2f} | {statistics.median(reads):.2f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=Path, default=Path("benchmarks/product_maps1024.npz"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--field", choices=("mixed", "ex", "gc"), default="mixed")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.maps.exists():
        make_maps(args.maps)
    table = run(args.maps, args.repeats, ("ex", "gc") if args.field == "mixed" else (args.field,))
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
