"""The validation figures and numbers of docs/simulation.md: each camera's simulated frames
against its spec's sources.

Run::

    OMP_NUM_THREADS=1 python benchmarks/simulation_figures.py [--out docs] [--frames 12]

Writes ``simulation_frames.png`` (one frame per camera: image, CR charge, label mask) and
``simulation_validation.png`` (per camera: noise residuals against N(0, 1); CR events against
exposure time with the spec's rate; the PSF FWHM measured on a rendered star against the
frame's seeing or the handbook range; the sky measured as the image median against the
spec's range), and prints the numbers (Markdown) including the CR-pixel fraction of DECam
training frames at the spec's multiplier and the time per 256 x 256 frame.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import galsim  # noqa: E402
import matplotlib  # noqa: E402
import matplotlib.ticker  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cosmiq_pyro.data import simulate  # noqa: E402
from cosmiq_pyro.data.simulate.optics import _render, psf_key  # noqa: E402
from cosmiq_pyro.data.simulate.scenes import _Scene  # noqa: E402

CAMERAS = ("ACS-WFC", "WFC3-UVIS", "DECam")


def star_fwhm_px(inst, band, fwhm=None, beta=None):
    """FWHM (px) of a bright star rendered by the point-source path (GalSim half-maximum radius)."""
    key = psf_key(inst, inst.simulation.filter(band), fwhm, beta)
    scene = _Scene(shape=(96, 96), pad=0, size=96, pixel_scale_arcsec=inst.detector.pixel_scale_arcsec)
    scene.add_stars([[48.25, 47.75]], [1e6])
    return galsim.Image(_render(scene, key), scale=1.0).calculateFWHM(center=galsim.PositionD(49.25, 48.75))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--frames", type=int, default=12)
    args = parser.parse_args()
    out = Path(args.out)
    insts = {name: simulate.resolve_instrument(name) for name in CAMERAS}

    # ---- one frame per camera
    fig, axes = plt.subplots(3, 3, figsize=(12, 12))
    for row, name in zip(axes, CAMERAS):
        mult = insts[name].simulation.cr_rate_multiplier
        f = simulate.simulate_frame(size=256, field="GC" if name != "DECam" else "EX", instrument=name,
                                    exptime_s=600.0, seed=5, cr_rate_multiplier=mult)
        lo, hi = np.percentile(f.image, [1, 99.5])
        row[0].imshow(f.image, vmin=lo, vmax=hi, origin="lower", cmap="gray")
        row[0].set_title(f"{name} {f.meta['filter']} {f.meta['field']} 600 s (CR rate x{mult:g})", fontsize=9)
        row[1].imshow(np.clip(f.cr_image, 0, None) ** 0.5, origin="lower", cmap="magma")
        row[1].set_title("CR charge (sqrt)", fontsize=9)
        row[2].imshow(f.mask, origin="lower", cmap="gray_r")
        rule = f.meta["label_rule"] + (f" k={f.meta['mask_threshold_sigma']:g}" if f.meta["label_rule"] == "sigma" else "")
        row[2].set_title(f"label mask ({rule}): {f.mask.mean():.2%} of pixels", fontsize=9)
        for a in row:
            a.set_xticks([]), a.set_yticks([])
    fig.tight_layout()
    fig.savefig(out / "simulation_frames.png", dpi=70)
    plt.close(fig)

    # ---- validation panels
    fig, axes = plt.subplots(4, 3, figsize=(13, 15))
    print("| camera | residual std (1 expected) | CR events / expected | star FWHM / expected "
          "| (image median - dark) / sky_e |")
    print("|---|---|---|---|---|")
    for col, name in enumerate(CAMERAS):
        inst = insts[name]
        sim = inst.simulation
        mult = 20.0 if sim.cosmic_rays.environment == "ground" else 1.0
        lo_t, hi_t = sim.exptime_s
        times = np.geomspace(lo_t, hi_t, args.frames)
        zs, counts, expected, fwhm_ratio, sky_ratio = [], [], [], [], []
        for i, t in enumerate(times):
            band = sim.filter_names[i % len(sim.filters)]
            f = simulate.simulate_frame(size=128, field="EX", filter=band, exptime_s=float(t), seed=100 + i,
                                        instrument=inst, cr_rate_multiplier=mult)
            var = f.noiseless.astype(float) + f.cr_image + f.meta["read_noise_e"] ** 2
            zs.append(((f.image - f.noiseless - f.cr_image) / np.sqrt(var))[~f.ignore])
            counts.append(f.meta["n_crs"])
            expected.append(simulate.expected_cr_count(128, t, inst, mult))
            dark_e = inst.detector.dark_e_per_s * t  # the image also holds dark current
            sky_ratio.append((np.median(f.image[~f.ignore]) - dark_e) / f.sky_e)
            if sim.psf.model == "moffat":
                measured = star_fwhm_px(inst, band, f.meta["seeing_fwhm_arcsec"], f.meta["moffat_beta"])
                fwhm_ratio.append((f.meta["seeing_fwhm_arcsec"] / inst.detector.pixel_scale_arcsec, measured))
        z = np.concatenate(zs)
        ax = axes[0, col]
        grid = np.linspace(-5, 5, 41)  # 0.25-sigma bins: wider than the ADC step
        ax.hist(z, bins=grid, density=True, color="0.6", label="simulated")
        ax.plot(grid, np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), "k-", label="N(0, 1)")
        ax.set_yscale("log"), ax.set_ylim(1e-5, 1)
        ax.set_title(f"{name}: (image - model - CR) / sqrt(model + CR + rn^2)", fontsize=9)
        ax.legend(fontsize=8)
        ax = axes[1, col]
        ax.plot(times, counts, "o", label="simulated frames")
        ax.plot(times, expected, "k-", label=f"spec rate x area x t (x{mult:g})")
        ax.set_xscale("log"), ax.set_xlabel("exposure time [s]"), ax.set_ylabel("CR events per 128^2 frame")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=8)
        ax = axes[2, col]
        if sim.psf.model == "moffat":
            want, got = np.array(fwhm_ratio).T
            ax.plot(want, got, "o"), ax.plot([2, 7], [2, 7], "k-")
            ax.set_xlabel("frame seeing / pixel scale [px]"), ax.set_ylabel("measured star FWHM [px]")
            ratio = float(np.median(got / want))
        else:
            bands = sim.filter_names
            got = [star_fwhm_px(inst, b) for b in bands]
            ax.bar(bands, got, color="0.6")
            if name == "WFC3-UVIS":
                ax.axhspan(1.6, 2.3, color="C2", alpha=0.2, label="MultiDrizzle HB 6.6: 1.6-2.3 px")
                ax.legend(fontsize=8)
            ax.set_ylabel("measured star FWHM [px]")
            ratio = float(np.mean(got))
        ax.set_title(f"{name}: PSF FWHM of a rendered star", fontsize=9)
        ax = axes[3, col]
        rates = {b: [] for b in sim.filter_names}
        for s in range(args.frames):
            for b in sim.filter_names:
                g = simulate.simulate_frame(size=16, filter=b, exptime_s=100.0, seed=s, instrument=inst)
                rates[b].append(g.sky_e / 100.0)
        for j, b in enumerate(sim.filter_names):
            lo, hi = sim.filter(b).sky_e_per_s
            ax.plot([j] * len(rates[b]), rates[b], "o", alpha=0.5)
            ax.plot([j - 0.3, j + 0.3], [lo, lo], "k-"), ax.plot([j - 0.3, j + 0.3], [hi, hi], "k-")
        ax.set_xticks(range(len(sim.filter_names)), sim.filter_names)
        ax.set_yscale("log"), ax.set_ylabel("sky [e-/s/pixel]; bars: spec range")
        print(f"| {name} | {z.std():.3f} | {sum(counts)}/{sum(expected):.1f} "
              f"| {'median %.3f' % ratio if sim.psf.model == 'moffat' else 'mean %.2f px' % ratio} "
              f"| {np.median(sky_ratio):.3f} |")
    fig.tight_layout()
    fig.savefig(out / "simulation_validation.png", dpi=70)
    plt.close(fig)

    # ---- DECam training frames at the spec's multiplier: CR-pixel fraction
    inst = insts["DECam"]
    fractions = []
    for i in range(args.frames * 2):
        spec = simulate.frame_spec(i, 7, instrument=inst)
        f = simulate.simulate_frame(size=256, instrument=inst, cr_rate_multiplier=inst.simulation.cr_rate_multiplier,
                                    **spec)
        fractions.append(f.mask[~f.ignore].mean())
    fractions = np.array(fractions)
    print(f"\nDECam training frames (x{inst.simulation.cr_rate_multiplier:g}, {len(fractions)} frames of 256^2, "
          f"spec exposure range): CR-label fraction median {np.median(fractions):.2%}, "
          f"10-90 % {np.percentile(fractions, 10):.2%}-{np.percentile(fractions, 90):.2%}")
    acs = simulate.make_dataset(len(fractions), size=256, seed=7)
    acs_frac = (acs.mask & ~acs.ignore).mean(axis=(1, 2))
    print(f"ACS-WFC training frames (x1, same count): median {np.median(acs_frac):.2%}, "
          f"10-90 % {np.percentile(acs_frac, 10):.2%}-{np.percentile(acs_frac, 90):.2%}")

    # ---- time per frame
    print("\n| camera | s per 256x256 frame (mean of 6, caches warm) |\n|---|---|")
    for name in CAMERAS:
        simulate.simulate_frame(size=256, instrument=name, seed=0)
        t0 = time.perf_counter()
        for s in range(6):
            simulate.simulate_frame(size=256, instrument=name, field=simulate.FIELDS[s % 3], seed=s)
        print(f"| {name} | {(time.perf_counter() - t0) / 6:.2f} |")


if __name__ == "__main__":
    main()
