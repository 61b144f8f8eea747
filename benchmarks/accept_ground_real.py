"""Real ground-based frames (issue 22, item 3): a ground model beside astroscrappy (LACosmic), the
tool ground-based astronomers trust, where no truth mask exists.

Frames (both shipped as test data of packages installed with the project's extras):

* astroscrappy's ``gmos.fits`` (Gemini GMOS-S, reduced, already in electrons: `accept_camera.gmos_electrons`;
  read noise 4.24 e-): two known CRs (astroscrappy's own test).  Pass: both flagged (p > 0.5) and
  no other flagged group (8-connected) -- and, as the ACS acceptance counts it, none over 20 px;
* ccdproc's ``a8280271.fits`` (SAAO 1.0 m raw frame: overscan median of BIASSEC subtracted, TRIMSEC
  kept, times GAIN 1.9 e-/ADU; read noise RDNOISE 5 e-: `decam_input_unit.frames`), ~30 CRs.

astroscrappy runs on the frame in ADU with the header's gain and read noise, otherwise its defaults
(sigclip 4.5, objlim 5): "astroscrappy sees something" = within 2 px of a pixel it flags so.  Its
*confident* CRs: the pixels it flags at twice the default threshold (sigclip 9), grouped
8-connected.  Per model (p > 0.5): pixels and groups flagged; share of astroscrappy's confident CR
pixels flagged and of its confident groups with at least one flagged pixel; share of the
model's flagged pixels where astroscrappy sees nothing (farther than 2 px from its default mask).

Masks are ``p > 0.5``; the ground model's MC map is also thresholded at ``--lower-thresholds``
(default 0.1 and 0.05: a model calibrated at the real CR rate leaves faint track edges below 0.5).

Models: the ground model (every predictive method: ``mc`` T = 16, ``moments``), deepCR's
``decam`` (our twin of its weights, fed DECam ADU = electrons / 4 as its model zoo asks) and the
HST model ``ACS-WFC-VI`` for reference.  Writes ``<out>/real_ground.md``, ``.json`` and
``saao_groups.png`` / ``gmos_groups.png`` (each model's flagged groups beside astroscrappy's)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/accept_ground_real.py --model /path/DECam-VI.pth \\
        --out benchmarks/camera_acceptance/real_ground
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from accept_camera import GMOS_READ_NOISE_E, gmos_electrons, gmos_row, run_info  # noqa: E402
from decam_input_unit import frames as adu_frames  # noqa: E402

from cosmiq_pyro.inference.methods import DEFAULT_T, METHODS  # noqa: E402
from cosmiq_pyro.inference.predictive import predict  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402

EIGHT = np.ones((3, 3), bool)
NEAR_PX = 2                  # "astroscrappy sees something": within 2 px of its default mask
CONFIDENT_SIGCLIP = 9.0      # astroscrappy's confident CRs: twice its default sigclip (4.5)


def real_frames() -> dict:
    """``{name: (electrons, adu, gain_e_per_adu, read_noise_e)}`` of gmos.fits and the SAAO frame."""
    gmos = gmos_electrons()
    saao = [f for f in adu_frames() if f[0].startswith("a8280271")][0]
    _, adu, gain, read_noise = saao
    return {"gmos": (gmos, gmos, 1.0, GMOS_READ_NOISE_E),
            "saao": ((adu * np.float32(gain)).astype(np.float32), adu, float(gain), float(read_noise))}


def astroscrappy_masks(adu, gain, read_noise) -> tuple[np.ndarray, np.ndarray]:
    """astroscrappy's mask at its defaults and at ``sigclip = CONFIDENT_SIGCLIP`` (confident)."""
    import astroscrappy

    default, _ = astroscrappy.detect_cosmics(adu, gain=gain, readnoise=read_noise)
    confident, _ = astroscrappy.detect_cosmics(adu, gain=gain, readnoise=read_noise, sigclip=CONFIDENT_SIGCLIP)
    return default.astype(bool), confident.astype(bool)


def comparison_row(name: str, flagged: np.ndarray, default: np.ndarray, confident: np.ndarray) -> dict:
    """The model's flagged pixels against astroscrappy's (see the module docstring)."""
    groups, n_groups = ndimage.label(flagged, structure=EIGHT)
    conf_groups, n_conf = ndimage.label(confident, structure=EIGHT)
    found = set(np.unique(conf_groups[flagged])) - {0}
    near = ndimage.binary_dilation(default, structure=EIGHT, iterations=NEAR_PX)
    n_flagged = int(flagged.sum())
    return {"predictor": name, "flagged_px": n_flagged, "flagged_groups": n_groups,
            "astroscrappy_px": int(default.sum()), "astroscrappy_groups": int(ndimage.label(default, EIGHT)[1]),
            "confident_px": int(confident.sum()), "confident_groups": n_conf,
            "confident_px_found": float((flagged & confident).sum() / max(confident.sum(), 1)),
            "confident_groups_found": len(found) / max(n_conf, 1),
            "flagged_px_where_astroscrappy_sees_nothing": int((flagged & ~near).sum()),
            "share_flagged_where_astroscrappy_sees_nothing": float((flagged & ~near).sum() / n_flagged) if n_flagged else 0.0,
            "groups_where_astroscrappy_sees_nothing": len(set(np.unique(groups[flagged & ~near])) - {0}
                                                          - set(np.unique(groups[flagged & near])))}


def _centres(mask: np.ndarray) -> np.ndarray:
    """(row, column) centres of the 8-connected groups of ``mask``, shape (n, 2)."""
    labels, n = ndimage.label(mask, structure=EIGHT)
    return np.array(ndimage.center_of_mass(mask, labels, range(1, n + 1))).reshape(-1, 2)


def figure(path: Path, image: np.ndarray, default: np.ndarray, confident: np.ndarray, flags: dict,
           title: str) -> None:
    """One panel per model and one of astroscrappy's: the frame (z-scale), each flagged group
    circled (red; astroscrappy: yellow at its defaults, cyan when confident), astroscrappy's
    default groups marked with small cyan squares in the models' panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import ZScaleInterval

    lo, hi = ZScaleInterval().get_limits(image)
    panels = {"astroscrappy": default, **flags}
    ncol = 2
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, 6.4 * nrow), squeeze=False)
    ref = _centres(default)
    for ax, (name, mask) in zip(axes.flat, panels.items()):
        ax.imshow(image, origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        centres = _centres(mask)
        if name == "astroscrappy":
            conf = _centres(confident)
            ax.scatter(centres[:, 1], centres[:, 0], s=90, facecolors="none", edgecolors="yellow", linewidths=1.0,
                       label=f"defaults (sigclip 4.5): {len(centres)} groups, {int(mask.sum())} px")
            ax.scatter(conf[:, 1], conf[:, 0], s=160, facecolors="none", edgecolors="cyan", linewidths=1.0,
                       label=f"confident (sigclip {CONFIDENT_SIGCLIP:g}): {len(conf)} groups, {int(confident.sum())} px")
        else:
            ax.scatter(ref[:, 1], ref[:, 0], s=12, marker="s", color="cyan", label="astroscrappy (defaults)")
            ax.scatter(centres[:, 1], centres[:, 0], s=90, facecolors="none", edgecolors="red", linewidths=1.0,
                       label=f"p > 0.5: {len(centres)} groups, {int(mask.sum())} px")
        ax.set_title(name, fontsize=10)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
        ax.set_xticks([]), ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the ground model: published name or checkpoint")
    p.add_argument("--name", default=None, help="its label (default: the checkpoint's stem)")
    p.add_argument("--deepcr", default="decam")
    p.add_argument("--baseline", default="ACS-WFC-VI", help="HST model for reference ('none' to leave out)")
    p.add_argument("--T", type=int, default=DEFAULT_T)
    p.add_argument("--lower-thresholds", type=float, nargs="*", default=[0.1, 0.05],
                   help="extra rows: the ground model's MC masks at these thresholds (below 0.5)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started, commit = time.time(), run_info()["commit"]  # the code that runs
    name = args.name or Path(args.model).stem
    model = load_model(args.model)
    runs = {f"{name} {m}" + (f" T={args.T}" if spec.sampling else ""): (model, m, args.T if spec.sampling else None)
            for m, spec in METHODS.items()}
    runs[f"deepCR {args.deepcr}"] = (load_model(args.deepcr), None, None)
    if args.baseline != "none":
        runs[f"{args.baseline} mc T={args.T}"] = (load_model(args.baseline), "mc", args.T)
    args.out.mkdir(parents=True, exist_ok=True)
    tables, gmos_rows = {}, []
    for frame, (electrons, adu, gain, read_noise) in real_frames().items():
        default, confident = astroscrappy_masks(adu, gain, read_noise)
        flags, rows = {}, []
        for label, (m, method, T) in runs.items():
            prob = predict(m, electrons, method=method, T=T, seed=0, progress=False, novelty=False).prob
            flags[label] = prob > 0.5
            rows.append(comparison_row(label, flags[label], default, confident))
            if frame == "gmos":
                gmos_rows.append(gmos_row(label, prob))
            if m is model and method == "mc":
                for t in args.lower_thresholds:
                    rows.append(comparison_row(f"{label}, p > {t:g}", prob > t, default, confident))
                    if frame == "gmos":
                        gmos_rows.append(gmos_row(f"{label}, p > {t:g}", prob, t))
        tables[frame] = pd.DataFrame(rows)
        shown = {k: v for k, v in flags.items() if not k.startswith(f"{name} moments")}
        figure(args.out / f"{frame}_groups.png", electrons, default, confident, shown,
               "a8280271.fits (SAAO 1.0 m)" if frame == "saao" else "gmos.fits (GMOS-S)")
        print(f"\n== {frame}\n" + tables[frame].to_string(index=False), flush=True)
    gmos = pd.DataFrame(gmos_rows)
    print("\n== gmos.fits known CRs\n" + gmos.to_string(index=False))
    info = {**run_info(), "commit": commit, "model": str(args.model), "deepcr": args.deepcr, "T": args.T,
            "confident_sigclip": CONFIDENT_SIGCLIP, "near_px": NEAR_PX, "seconds": round(time.time() - started)}
    md = [f"# Real ground-based frames: {name}\n\n{info['utc']} UTC, commit {info['commit']}, {info['machine']}, "
          f"load average {info['load_average_1_5_15']}\n\n## gmos.fits: the two known CRs\n\n",
          gmos.to_markdown(index=False, floatfmt=".4g"), "\n"]
    for frame, table in tables.items():
        md += [f"\n## {frame}: against astroscrappy\n\n", table.to_markdown(index=False, floatfmt=".3g"), "\n"]
    (args.out / "real_ground.md").write_text("".join(md))
    (args.out / "real_ground.json").write_text(json.dumps(
        {"run": info, "gmos_known_crs": gmos.to_dict(orient="records"),
         **{frame: t.to_dict(orient="records") for frame, t in tables.items()}}, indent=1, default=float) + "\n")
    print(f"\n{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
