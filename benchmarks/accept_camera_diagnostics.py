"""Two follow-ups of `accept_camera.py` on the maps it stored (``--cache``; a missing map is computed):

* star cores by star brightness: the share of pixels within 2 px of the peak of a star with
  S/N > 50 flagged at p > 0.5 (`metrics.star_core_flags`), per predictor, in bins of the star's
  S/N and per field;
* prior shift: a model trained at ``m`` times the real CR rate sees CRs ``m`` times too often in
  its prior; Bayes' rule for a change of class prior (label shift: p(x | y) unchanged) moves every
  logit by ``log(pi_1 / (1 - pi_1)) - log(pi_m / (1 - pi_m))``, about ``-log m`` for small CR
  pixel fractions (``-log m`` is applied).  The calibration metrics at the real rate with that
  offset (the ranking, so TPR at fixed FPR and AUROC, does not change), and the star-core and
  bright-core shares that depend on the threshold.

    python benchmarks/accept_camera_diagnostics.py --camera DECam --model /path/DECam-VI.pth \\
        --cache /path/cache --out benchmarks/camera_acceptance/DECam/diagnostics.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from accept_camera import (BRIGHT_SIGMA, HELD_OUT_REAL, STAR_RADIUS_PX, Cached, _star_peaks,  # noqa: E402
                           held_out_set, model_tag)

from cosmiq_pyro.evaluation import metrics  # noqa: E402
from cosmiq_pyro.evaluation.peers import ModelPredictor  # noqa: E402
from cosmiq_pyro.evaluation.study.collect import _frame_seed  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402

SNR_BINS = (50.0, 200.0, 1000.0, 5000.0, np.inf)


def stored(label: str, model, cache: Path, **kwargs) -> Cached:
    """The predictor ``accept_camera.py`` ran as ``label``, read from ``cache`` (a map missing
    there is computed and stored)."""
    return Cached(ModelPredictor(model, **kwargs), cache, model_tag(label, model))


def _shift(prob: np.ndarray, offset: float) -> np.ndarray:
    """``sigmoid(logit(prob) + offset)`` in float64 (``prob`` clipped to [1e-12, 1 - 1e-12])."""
    p = np.clip(np.asarray(prob, np.float64), 1e-12, 1 - 1e-12)
    return 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p) + offset)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camera", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--deepcr", default=None)
    p.add_argument("--baseline", default="ACS-WFC-VI")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--multiplier", type=float, default=None, help="training CR-rate multiplier (default: the card's)")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    name = Path(args.model).stem
    model = load_model(args.model)
    multiplier = args.multiplier or float(model.card["recipe"]["cr_rate_multiplier"])
    ds = held_out_set(args.camera, args.n, HELD_OUT_REAL)
    deepcr_name = args.deepcr or ds.instrument.models.deepcr
    preds = {f"{name} mc T={args.T}": stored(f"{name} mc T={args.T}", model, args.cache, T=args.T),
             f"{name} moments": stored(f"{name} moments", model, args.cache, method="moments"),
             f"deepCR {deepcr_name}": stored(f"deepCR {deepcr_name}", load_model(deepcr_name), args.cache),
             f"{args.baseline} mc T={args.T}": stored(f"{args.baseline} mc T={args.T}", load_model(args.baseline),
                                                      args.cache, T=args.T)}
    scale = ds.instrument.detector.pixel_scale_arcsec
    bins = {k: {(lo, f): metrics.StarCoreFlags(0, 0) for lo in SNR_BINS[:-1] for f in ("all", "EX", "GC", "GAL")}
            for k in preds}
    stars_per_bin = {lo: 0 for lo in SNR_BINS[:-1]}
    ps, ys = {k: [] for k in preds}, []
    offset = -np.log(multiplier)  # refined below from the CR fraction; used for the per-frame counts
    shifted_stars = {k: metrics.StarCoreFlags(0, 0) for k in preds if k.startswith(name)}
    shifted_bright = {k: [] for k in shifted_stars}
    for i in range(len(ds)):
        frame = ds.frame(i)
        keep = ~frame.ignore
        ys.append(frame.mask[keep])
        noise = np.sqrt(frame.noiseless + frame.meta["read_noise_e"] ** 2)
        bright = frame.mask & (frame.cr_image > BRIGHT_SIGMA * noise) & keep
        peaks = _star_peaks(frame, scale)
        snr = None
        if peaks is not None:
            fwhm_px = frame.meta["seeing_fwhm_arcsec"] / scale
            snr_all = metrics.star_snr(frame.star_e, frame.sky_e, frame.meta["read_noise_e"], fwhm_px)
            snr = snr_all[snr_all > 50.0]
        for k, pred in preds.items():
            prob = pred.predict(frame.image, ignore=frame.ignore, seed=_frame_seed(0, i)).prob
            ps[k].append(prob[keep])
            if k in shifted_stars:
                moved = _shift(prob, offset).astype(np.float32)
                shifted_bright[k].append(moved[bright])
                if peaks is not None:
                    shifted_stars[k] += metrics.star_core_flags(moved, frame.mask, peaks, radius_px=STAR_RADIUS_PX,
                                                                ignore=frame.ignore)
            if snr is None:
                continue
            for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
                sel = peaks[(snr > lo) & (snr <= hi)]
                flags = metrics.star_core_flags(prob, frame.mask, sel, radius_px=STAR_RADIUS_PX, ignore=frame.ignore)
                bins[k][(lo, "all")] += flags
                bins[k][(lo, frame.meta["field"])] += flags
        if snr is not None:
            for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
                stars_per_bin[lo] += int(((snr > lo) & (snr <= hi)).sum())
    y = np.concatenate(ys)
    out = {"camera": args.camera, "model": str(args.model), "n_frames": args.n, "multiplier": multiplier,
           "snr_bins": [str(b) for b in SNR_BINS], "stars_per_bin": {str(k): v for k, v in stars_per_bin.items()},
           "star_cores": {k: {f"{lo:g}-{hi:g} {f}": [v.n_flagged, v.n_px]
                              for (lo, f), v in b.items() for hi in [SNR_BINS[SNR_BINS.index(lo) + 1]]}
                          for k, b in bins.items()},
           "prior_shift": {}}
    pi_real = float(y.mean())
    pi_train = min(pi_real * multiplier, 0.5)
    out["prior_shift"]["cr_fraction_real"] = pi_real
    out["prior_shift"]["logit_offset_exact"] = float(np.log(pi_real / (1 - pi_real)) - np.log(pi_train / (1 - pi_train)))
    out["prior_shift"]["logit_offset"] = float(offset)  # -log(multiplier): what is applied
    for k in preds:
        prob = np.concatenate(ps[k]).astype(np.float64)
        row = {"brier": metrics.brier(prob, y), "nll": metrics.nll(prob, y), "ece": metrics.ece(prob, y)}
        if k.startswith(name):
            shifted = _shift(prob, offset)
            b = np.concatenate(shifted_bright[k])
            row.update(brier_shifted=metrics.brier(shifted, y), nll_shifted=metrics.nll(shifted, y),
                       ece_shifted=metrics.ece(shifted, y),
                       star_core_frac_shifted=shifted_stars[k].fraction, n_star_core_px=shifted_stars[k].n_px,
                       bright_core_frac_p_ge_0_99_shifted=float((b >= 0.99).mean()) if b.size else float("nan"),
                       n_bright_core_px=int(b.size))
        out["prior_shift"][k] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
