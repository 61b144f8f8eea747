"""Follow-ups of `accept_camera.py` on the maps it stored (``--cache``; a missing map is computed),
each a ``--parts`` name (default: all):

* ``star_cores``, by star brightness (real-rate set): the share of pixels within 2 px of the
  peak of a star with S/N > 50 flagged at p > 0.5 (`metrics.star_core_flags`), per predictor,
  in bins of the star's S/N and per field;
* ``star_flags``, real-rate and boosted sets: the flagged star-core pixels by what lies under or
  beside them (CR charge below the spec's label rule, an ignored pixel, a truth CR pixel,
  nothing), and the reliability of p on star cores;
* ``star_train``: that reliability on the model's own training frames (its card's recipe), to
  tell a fit that is too loose from too few frames;
* ``thresholds``, real-rate and boosted sets: what ``p > t`` catches (CR pixels, by charge; CR
  charge) and costs (false-positive pixels per frame), the camera's model beside deepCR's;
* ``bright_cores``: bright CR cores below p = 0.99 (boosted set, when the spec trains at a
  boosted rate, else the real-rate set): where the camera's model misses them -- per field, by
  CR charge (in sigma of the pixel's noise), next to a star (within 3 px of any star's peak),
  next to an ignored pixel (3x3), and how low their probability is;
* ``star_offset``, real-rate and boosted sets: what a star-aware correction of the logits could
  do, on the MC maps: ``logit + delta * s`` with ``s`` the star-core indicator from the truth
  catalogue (an oracle: the most any star-core recalibration can give) or ``s`` a linear
  classifier of star cores on the posterior-mean net's own features (its 32 decoder and 64
  bottleneck channels, fitted on 60 boosted frames disjoint from both sets); per ``delta``, the
  star-core share, bright cores at p >= 0.99, TPR, ECE and NLL, and which star-core pixels the
  classifier finds (all of them, and those the model flags).

The camera's model is told each set's CR rate (`accept_camera.at_rate`), as in the acceptance.
(Until the prior-shift correction became part of the package, this script also applied ``-log m``
to a model trained at ``m`` times the real rate; `cosmiq_pyro.inference.prior_shift` does that now.)

    python benchmarks/accept_camera_diagnostics.py --camera DECam --model /path/DECam-VI.pth \\
        --cache /path/cache --out benchmarks/camera_acceptance/DECam/diagnostics.json
    python benchmarks/accept_camera_diagnostics.py --camera ACS-WFC --model ACS-WFC-VI --n 100 \\
        --cache /path/cache --out benchmarks/camera_acceptance/ACS-WFC/diagnostics.json --parts thresholds

A run of some parts keeps the others of an existing ``--out``; ``runs`` records when each ran.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from accept_camera import (BRIGHT_SIGMA, HELD_OUT_BOOSTED, HELD_OUT_REAL, Cached, at_rate,  # noqa: E402
                           held_out_set, model_tag, run_info)

from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.data.simulate import STAR_CORE_RADIUS_PX, bright_star_peaks  # noqa: E402
from cosmiq_pyro.evaluation import metrics  # noqa: E402
from cosmiq_pyro.evaluation.peers import ModelPredictor  # noqa: E402
from cosmiq_pyro.evaluation.study.collect import _frame_seed  # noqa: E402
from cosmiq_pyro.inference.predictive import predict  # noqa: E402
from cosmiq_pyro.instruments import get_instrument  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402

SNR_BINS = (50.0, 200.0, 1000.0, 5000.0, np.inf)
PARTS = ("star_cores", "bright_cores", "star_flags", "thresholds", "star_train", "star_offset")
THRESHOLDS = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02)
RELIABILITY_EDGES = (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)
SIGMA_BINS = (4.0, 10.0, 50.0, np.inf)  # CR charge over the pixel's noise without the CR


def stored(label: str, model, cache: Path, **kwargs) -> Cached:
    """The predictor ``accept_camera.py`` ran as ``label``, read from ``cache`` (a map missing
    there is computed and stored)."""
    return Cached(ModelPredictor(model, **kwargs), cache, model_tag(label, model))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camera", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--deepcr", default=None)
    p.add_argument("--baseline", default="ACS-WFC-VI")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="the follow-ups to run; the others stay as they are in --out if it exists")
    args = p.parse_args(argv)
    name = Path(args.model).stem
    model = load_model(args.model)
    spec = get_instrument(args.camera)
    deepcr_name = args.deepcr or spec.models.deepcr
    boost = float(spec.simulation.cr_rate_multiplier)
    out = json.loads(args.out.read_text()) if args.out.exists() and set(args.parts) != set(PARTS) else {}
    out.update({"camera": args.camera, "n_frames": args.n, **run_info()})
    out.setdefault("model", str(args.model))
    measured = f"{args.model} (file sha256 {hashlib.sha256(Path(model.weights_file).read_bytes()).hexdigest()[:12]})"
    # when and where each part ran, and on which model
    out.setdefault("runs", {}).update({part: {**run_info(), "model": measured} for part in args.parts})
    if "star_cores" in args.parts:
        out["star_cores"] = star_cores(name, model, deepcr_name, args)
    if "bright_cores" in args.parts:
        out["bright_cores"] = bright_cores(name, model, args, boost)
    if "star_flags" in args.parts:
        out["star_flags_by_surroundings"] = {f"x{m:g}": star_flags_by_surroundings(name, model, args, m)
                                             for m in dict.fromkeys((1.0, boost))}
    if "star_train" in args.parts:
        out["star_core_reliability_training_frames"] = star_reliability_on_training_frames(model, args)
    if "thresholds" in args.parts:
        out["thresholds"] = {f"x{m:g}": thresholds(name, model, deepcr_name, args, m) for m in dict.fromkeys((1.0, boost))}
    if "star_offset" in args.parts:
        out["star_offset"] = star_offset(name, model, args, boost)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(json.dumps(out, indent=1, default=float))
    return 0


def star_cores(name: str, model, deepcr_name: str, args) -> dict:
    """Star-core flags by S/N bin and field on the real-rate set, per predictor."""
    ds = held_out_set(args.camera, args.n, HELD_OUT_REAL)
    preds = {f"{name} mc T={args.T}": stored(f"{name} mc T={args.T}", model, args.cache, T=args.T),
             f"{name} moments": stored(f"{name} moments", model, args.cache, method="moments"),
             f"deepCR {deepcr_name}": stored(f"deepCR {deepcr_name}", load_model(deepcr_name), args.cache),
             f"{args.baseline} mc T={args.T}": stored(f"{args.baseline} mc T={args.T}", load_model(args.baseline),
                                                      args.cache, T=args.T)}
    scale = ds.instrument.detector.pixel_scale_arcsec
    bins = {k: {(lo, f): metrics.StarCoreFlags(0, 0) for lo in SNR_BINS[:-1] for f in ("all", "EX", "GC", "GAL")}
            for k in preds}
    stars_per_bin = {lo: 0 for lo in SNR_BINS[:-1]}
    for i in range(len(ds)):
        frame = ds.frame(i)
        peaks = bright_star_peaks(frame, scale)
        if peaks is None:
            continue
        fwhm_px = frame.meta["seeing_fwhm_arcsec"] / scale
        snr_all = metrics.star_snr(frame.star_e, frame.sky_e, frame.meta["read_noise_e"], fwhm_px)
        snr = snr_all[snr_all > 50.0]
        for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
            stars_per_bin[lo] += int(((snr > lo) & (snr <= hi)).sum())
        for k, pred in preds.items():
            prob = pred.predict(frame.image, ignore=frame.ignore, seed=_frame_seed(0, i)).prob
            for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
                sel = peaks[(snr > lo) & (snr <= hi)]
                flags = metrics.star_core_flags(prob, frame.mask, sel, radius_px=STAR_CORE_RADIUS_PX, ignore=frame.ignore)
                bins[k][(lo, "all")] += flags
                bins[k][(lo, frame.meta["field"])] += flags
    return {"snr_bins": [str(b) for b in SNR_BINS], "stars_per_bin": {str(k): v for k, v in stars_per_bin.items()},
            "flagged_of_px": {k: {f"{lo:g}-{hi:g} {f}": [v.n_flagged, v.n_px]
                                  for (lo, f), v in b.items() for hi in [SNR_BINS[SNR_BINS.index(lo) + 1]]}
                              for k, b in bins.items()}}


#: what lies under or beside a flagged star-core pixel, in the order tested (the first that holds)
SURROUNDINGS = ("cr_charge_ge_1sigma", "next_to_ignored", "next_to_cr_px", "2_3px_from_cr_px", "isolated")


def reliability_rows(p: np.ndarray, y: np.ndarray) -> list[dict]:
    """Per bin of ``p`` (`RELIABILITY_EDGES`; the package's `metrics.reliability_curve` has only
    uniform or quantile bins): the pixels, their mean p and the share that are truth CR pixels."""
    bin_of = np.digitize(p, RELIABILITY_EDGES[1:-1])
    rows = []
    for b, (lo, hi) in enumerate(zip(RELIABILITY_EDGES[:-1], RELIABILITY_EDGES[1:])):
        sel = bin_of == b
        n = int(sel.sum())
        rows.append({"p_bin": [lo, hi], "n_px": n, "mean_p": float(p[sel].mean()) if n else None,
                     "truth_cr_share": float(y[sel].mean()) if n else None})
    return rows


def star_flags_by_surroundings(name: str, model, args, multiplier: float) -> dict:
    """The flagged star-core pixels of one set (real rate, or the boosted set) by what lies under
    or beside them, the camera's model told the set's rate, MC and moments.

    A flagged pixel (not ignored, not a truth CR pixel, ``p > 0.5``, within 2 px of the peak of a
    star with S/N > 50) is put in the first class that holds: it carries CR charge of at least
    1 sigma of its noise without the CR (a CR on a star core, below the spec's k-sigma label rule,
    which the star's photon noise raises); it touches an ignored pixel (3x3: a bad column, a
    saturated core); it touches a truth CR pixel (3x3); it lies 2-3 px from one; none (isolated).

    Also the reliability of the MC map on all star-core pixels (truth CR pixels included; not
    split by distance to a CR, which would condition on the truth): per bin of p
    (`RELIABILITY_EDGES`), the pixels, their mean p and the share that are truth CR pixels (a
    calibrated map has the two equal).
    """
    seed = HELD_OUT_BOOSTED if multiplier != 1.0 else HELD_OUT_REAL
    ds = held_out_set(args.camera, args.n, seed, multiplier)
    told = at_rate(model, multiplier)
    preds = {f"{name} mc T={args.T}": stored(f"{name} mc T={args.T}", told, args.cache, T=args.T),
             f"{name} moments": stored(f"{name} moments", told, args.cache, method="moments")}
    scale = ds.instrument.detector.pixel_scale_arcsec
    counts = {k: dict.fromkeys(SURROUNDINGS, 0) for k in preds}
    core_p, core_y = [], []  # the MC map and the truth on star-core pixels, for `reliability_rows`
    p_flagged = {k: {c: [] for c in SURROUNDINGS} for k in preds}
    n_px = 0
    for i in range(len(ds)):
        frame = ds.frame(i)
        peaks = bright_star_peaks(frame, scale)
        if peaks is None or not len(peaks):
            continue
        core = metrics.star_core_mask(frame.image.shape, peaks, STAR_CORE_RADIUS_PX) & ~frame.mask & ~frame.ignore
        n_px += int(core.sum())
        noise = np.sqrt(frame.noiseless + frame.meta["read_noise_e"] ** 2)
        square = np.ones((3, 3), bool)
        classes = [frame.cr_image / noise >= 1.0, ndimage.binary_dilation(frame.ignore, structure=square),
                   ndimage.binary_dilation(frame.mask, structure=square),
                   ndimage.binary_dilation(frame.mask, structure=square, iterations=3)]
        kind = np.select(classes, range(len(classes)), len(classes))  # (H, W) index into SURROUNDINGS
        cores_all = metrics.star_core_mask(frame.image.shape, peaks, STAR_CORE_RADIUS_PX) & ~frame.ignore
        for k, pred in preds.items():
            prob = pred.predict(frame.image, ignore=frame.ignore, seed=_frame_seed(0, i)).prob
            if k.startswith(f"{name} mc"):
                core_p.append(prob[cores_all]), core_y.append(frame.mask[cores_all])
            flagged = core & (prob > 0.5)
            for j, c in enumerate(SURROUNDINGS):
                sel = flagged & (kind == j)
                counts[k][c] += int(sel.sum())
                p_flagged[k][c].extend(prob[sel].tolist())
    return {"set_seed": seed, "cr_rate_multiplier": multiplier, "n_star_core_px": n_px,
            "flagged_by_surroundings": counts,
            "star_core_reliability_mc": reliability_rows(np.concatenate(core_p), np.concatenate(core_y)),
            "median_p_of_flagged": {k: {c: float(np.median(v)) if v else None for c, v in d.items()}
                                    for k, d in p_flagged.items()}}


def star_reliability_on_training_frames(model, args) -> dict:
    """The star-core reliability of `star_flags_by_surroundings` on the model's own training
    frames (the first ``--n`` of them, rebuilt from its card's recipe, without the flips and
    rotations; moment pass, the model told the training rate): a model over-confident on star
    cores it was trained on needs a better fit, not more frames."""
    recipe = model.card["recipe"]
    options = {k: tuple(recipe[k]) if isinstance(recipe[k], list) else recipe[k]
               for k in ("size", "fields", "filters", "exptime_s", "label_rule", "cr_rate_multiplier")}
    ds = SimulatedDataset(min(args.n, recipe["n_train"]), seed=recipe["train_seed"], augment=False,
                          instrument=args.camera, **options)
    told = at_rate(model, recipe["cr_rate_multiplier"])
    scale = ds.instrument.detector.pixel_scale_arcsec
    core_p, core_y = [], []
    flags = metrics.StarCoreFlags(0, 0)
    for i in range(len(ds)):
        frame = ds.frame(i)
        peaks = bright_star_peaks(frame, scale)
        if peaks is None or not len(peaks):
            continue
        prob = predict(told, frame.image, method="moments", ignore=frame.ignore, novelty=False, progress=False).prob
        flags += metrics.star_core_flags(prob, frame.mask, peaks, radius_px=STAR_CORE_RADIUS_PX, ignore=frame.ignore)
        cores = metrics.star_core_mask(frame.image.shape, peaks, STAR_CORE_RADIUS_PX) & ~frame.ignore
        core_p.append(prob[cores]), core_y.append(frame.mask[cores])
    return {"train_seed": recipe["train_seed"], "n_frames": len(ds), "cr_rate_multiplier": recipe["cr_rate_multiplier"],
            "method": "moments", "star_core_px": flags.n_px, "star_core_flagged": flags.n_flagged,
            "reliability": reliability_rows(np.concatenate(core_p), np.concatenate(core_y))}


def thresholds(name: str, model, deepcr_name: str, args, multiplier: float) -> dict:
    """What a mask ``p > t`` catches and costs, for the thresholds `THRESHOLDS`, on one set (the
    camera's model with MC, told the set's rate, and deepCR's): the share of truth CR pixels
    flagged, overall and by CR charge (`SIGMA_BINS`, in sigma of the pixel's noise without the
    CR), the share of the truth CR pixels' CR charge on flagged pixels, and the false-positive
    pixels per frame (ignored pixels left out throughout)."""
    seed = HELD_OUT_BOOSTED if multiplier != 1.0 else HELD_OUT_REAL
    ds = held_out_set(args.camera, args.n, seed, multiplier)
    preds = {f"{name} mc T={args.T}": stored(f"{name} mc T={args.T}", at_rate(model, multiplier), args.cache, T=args.T),
             f"deepCR {deepcr_name}": stored(f"deepCR {deepcr_name}", load_model(deepcr_name), args.cache)}
    bins = list(zip(SIGMA_BINS[:-1], SIGMA_BINS[1:]))
    zero = {"cr_px": 0, "cr_flagged": 0, "charge": 0.0, "charge_flagged": 0.0, "fp": 0,
            **{f"cr_px {lo:g}-{hi:g}": 0 for lo, hi in bins}, **{f"flagged {lo:g}-{hi:g}": 0 for lo, hi in bins}}
    acc = {k: {t: dict(zero) for t in THRESHOLDS} for k in preds}
    for i in range(len(ds)):
        frame = ds.frame(i)
        cr, clean = frame.mask & ~frame.ignore, ~frame.mask & ~frame.ignore
        sigma = frame.cr_image / np.sqrt(frame.noiseless + frame.meta["read_noise_e"] ** 2)
        in_bin = {f"{lo:g}-{hi:g}": cr & (sigma > lo) & (sigma <= hi) for lo, hi in bins}  # the frame's, once
        totals = {"cr_px": int(cr.sum()), "charge": float(frame.cr_image[cr].sum()),
                  **{f"cr_px {b}": int(sel.sum()) for b, sel in in_bin.items()}}
        for k, pred in preds.items():
            prob = pred.predict(frame.image, ignore=frame.ignore, seed=_frame_seed(0, i)).prob
            for t in THRESHOLDS:
                a, flagged = acc[k][t], prob > t
                for key, value in totals.items():
                    a[key] += value
                a["cr_flagged"] += int((cr & flagged).sum())
                a["charge_flagged"] += float(frame.cr_image[cr & flagged].sum())
                a["fp"] += int((clean & flagged).sum())
                for b, sel in in_bin.items():
                    a[f"flagged {b}"] += int((sel & flagged).sum())
    return {"set_seed": seed, "cr_rate_multiplier": multiplier, "n_frames": len(ds),
            "rows": [{"predictor": k, "threshold": t, "tpr_pct": 100 * a["cr_flagged"] / max(a["cr_px"], 1),
                      **{f"tpr_pct {lo:g}-{hi:g} sigma": 100 * a[f"flagged {lo:g}-{hi:g}"] / max(a[f"cr_px {lo:g}-{hi:g}"], 1)
                         for lo, hi in bins},
                      "cr_charge_flagged_pct": 100 * a["charge_flagged"] / max(a["charge"], 1e-9),
                      "fp_px_per_frame": a["fp"] / len(ds)}
                     for k, by_t in acc.items() for t, a in by_t.items()]}


def bright_cores(name: str, model, args, boost: float) -> dict:
    """Where the camera's model (MC, told the set's rate) leaves bright CR cores below p = 0.99."""
    seed, multiplier = (HELD_OUT_BOOSTED, boost) if boost != 1.0 else (HELD_OUT_REAL, 1.0)
    ds = held_out_set(args.camera, args.n, seed, multiplier)
    told = at_rate(model, multiplier)
    pred = stored(f"{name} mc T={args.T}", told, args.cache, T=args.T)
    scale = ds.instrument.detector.pixel_scale_arcsec
    counts: dict = {}

    def add(key, low):
        n, m = counts.get(key, (0, 0))
        counts[key] = (n + int(low.sum()), m + int(low.size))
    p_all = []
    for i in range(len(ds)):
        frame = ds.frame(i)
        keep = ~frame.ignore
        noise = np.sqrt(frame.noiseless + frame.meta["read_noise_e"] ** 2)
        sigma = frame.cr_image / noise
        bright = frame.mask & (sigma > BRIGHT_SIGMA) & keep
        if not bright.any():
            continue
        prob = pred.predict(frame.image, ignore=frame.ignore, seed=_frame_seed(0, i)).prob
        near_star = np.zeros(frame.image.shape, bool)
        if len(frame.star_xy):
            rows, cols = np.rint(frame.star_xy[:, 1]).astype(int), np.rint(frame.star_xy[:, 0]).astype(int)
            inside = (rows >= 0) & (rows < near_star.shape[0]) & (cols >= 0) & (cols < near_star.shape[1])
            near_star[rows[inside], cols[inside]] = True
            near_star = ndimage.binary_dilation(near_star, iterations=3)
        near_ignored = ndimage.binary_dilation(frame.ignore, structure=np.ones((3, 3)))
        low = prob[bright] < 0.99
        p_all.append(prob[bright])
        add(("all",), low)
        add(("field", frame.meta["field"]), low)
        for lo, hi in ((50, 100), (100, 300), (300, 1000), (1000, np.inf)):
            add(("charge_sigma", f"{lo}-{hi:g}"), low[(sigma[bright] > lo) & (sigma[bright] <= hi)])
        add(("near_star_3px", bool(True)), low[near_star[bright]])
        add(("near_star_3px", bool(False)), low[~near_star[bright]])
        add(("next_to_ignored", bool(True)), low[near_ignored[bright]])
        add(("next_to_ignored", bool(False)), low[~near_ignored[bright]])
    p = np.concatenate(p_all) if p_all else np.zeros(0)
    return {"set_seed": seed, "cr_rate_multiplier": multiplier, "n_bright_core_px": int(p.size),
            "below_0.99_of_px": {" ".join(map(str, k)): list(v) for k, v in counts.items()},
            "p_quantiles_of_those_below_0.99": {q: float(np.quantile(p[p < 0.99], q)) for q in (0.1, 0.25, 0.5, 0.75)}
            if (p < 0.99).any() else {}}


#: logit offsets tried on star cores by `star_offset`
STAR_OFFSETS = (0.0, -0.5, -1.0, -1.5, -2.0, -3.0)
#: frames the star-core classifier of `star_offset` is fitted on: boosted, disjoint from both sets
STAR_CLASSIFIER_SEED, STAR_CLASSIFIER_FRAMES = HELD_OUT_BOOSTED + 7_000, 60


def net_features(net, input_transform, frame) -> np.ndarray:
    """(H*W, 3h): the plain ``net``'s decoder output (h channels, the head's input) and its
    bottleneck (2h channels, nearest-upsampled) at every pixel of ``frame``, the image put in the
    net's units by ``input_transform`` as predict does."""
    import torch
    import torch.nn.functional as F

    from cosmiq_pyro.data.input_transform import model_input
    from cosmiq_pyro.inference.predictive import validated_image
    from cosmiq_pyro.utils.tiling import pad_to_grid

    x = validated_image(frame.image, frame.ignore)
    height, width = x.shape
    inp = torch.from_numpy(pad_to_grid(model_input(x, input_transform)))[None, None]
    with torch.inference_mode():
        skip = net.inc(inp)  # (1, h, H, W)
        low = net.down(skip)  # (1, 2h, H/2, W/2)
        both = torch.cat([net.up(low, skip), F.interpolate(low, scale_factor=2, mode="nearest")], 1)[0]
    return both[:, :height, :width].reshape(both.shape[0], -1).T.numpy()


def fit_star_classifier(model, args, boost: float):
    """A logistic regression of "within 2 px of the peak of a star with S/N > 50" (clean pixels)
    against every CR pixel and 3000 other pixels per frame, on `net_features`, standardised,
    ridge 1e-4; returns ``s(frame) -> (H, W)`` probabilities."""
    import torch
    import torch.nn.functional as F

    from cosmiq_pyro.inference.adaptation import plain_net

    net = plain_net(model)  # the posterior means, built once
    ds = held_out_set(args.camera, STAR_CLASSIFIER_FRAMES, STAR_CLASSIFIER_SEED, boost)
    scale = ds.instrument.detector.pixel_scale_arcsec
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for i in range(len(ds)):
        frame = ds.frame(i)
        keep, core = ~frame.ignore.ravel(), np.zeros(frame.image.size, bool)
        peaks = bright_star_peaks(frame, scale)
        if peaks is not None and len(peaks):
            core = metrics.star_core_mask(frame.image.shape, peaks, STAR_CORE_RADIUS_PX).ravel()
        cr = frame.mask.ravel() & keep
        star = np.flatnonzero(core & keep & ~cr)
        rest = np.flatnonzero(keep & ~core & ~cr)
        rest = rng.choice(rest, min(rest.size, 3000), replace=False)
        idx = np.concatenate([star, np.flatnonzero(cr), rest])
        xs.append(net_features(net, model.input_transform, frame)[idx])
        ys.append(np.arange(idx.size) < star.size)
    x = torch.from_numpy(np.concatenate(xs)).float()
    y = torch.from_numpy(np.concatenate(ys)).float()
    mean, sd = x.mean(0), x.std(0) + 1e-6
    xs_ = (x - mean) / sd
    w, b = torch.zeros(x.shape[1], requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xs_ @ w + b, y) + 1e-4 * (w ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    w, b = w.detach(), b.detach()
    with torch.no_grad():
        fit_loss = float(F.binary_cross_entropy_with_logits(xs_ @ w + b, y))

    def star_prob(frame):
        feats = (torch.from_numpy(net_features(net, model.input_transform, frame)) - mean) / sd
        return torch.sigmoid(feats @ w + b).numpy().reshape(frame.image.shape)
    return star_prob, {"fit_frames": len(ds), "fit_seed": STAR_CLASSIFIER_SEED, "fit_px": int(y.numel()),
                       "fit_star_px": int(y.sum()), "fit_bce": fit_loss}


def star_offset(name: str, model, args, boost: float) -> dict:
    """The MC maps with ``delta * s`` added to the logit on star cores (module docstring)."""
    star_prob, fit = fit_star_classifier(model, args, boost)
    out = {"offsets": list(STAR_OFFSETS), "classifier": fit}
    for multiplier in dict.fromkeys((1.0, boost)):
        seed = HELD_OUT_BOOSTED if multiplier != 1.0 else HELD_OUT_REAL
        ds = held_out_set(args.camera, args.n, seed, multiplier)
        pred = stored(f"{name} mc T={args.T}", at_rate(model, multiplier), args.cache, T=args.T)
        scale = ds.instrument.detector.pixel_scale_arcsec
        acc = {(kind, d): {"flags": metrics.StarCoreFlags(0, 0), "bright": [], "p": [], "y": []}
               for kind in ("oracle", "classifier") for d in STAR_OFFSETS}
        found = {"star_core_px": [0, 0], "flagged_star_core_px": [0, 0], "cr_px": [0, 0], "bright_core_px": [0, 0],
                 "other_px": [0, 0]}  # [with s > 0.5, all]

        def tally(key, sel):
            found[key][0] += int(sel.sum())
            found[key][1] += int(sel.size)
        for i in range(len(ds)):
            frame = ds.frame(i)
            keep = ~frame.ignore
            prob = pred.predict(frame.image, ignore=frame.ignore, seed=_frame_seed(0, i)).prob.astype(np.float64)
            logit = np.log(np.clip(prob, 1e-12, 1.0)) - np.log(np.clip(1.0 - prob, 1e-12, 1.0))
            noise = np.sqrt(frame.noiseless + frame.meta["read_noise_e"] ** 2)
            bright = frame.mask & (frame.cr_image > BRIGHT_SIGMA * noise) & keep
            peaks = bright_star_peaks(frame, scale)
            has_stars = peaks is not None and len(peaks) > 0
            core = (metrics.star_core_mask(frame.image.shape, peaks, STAR_CORE_RADIUS_PX) if has_stars
                    else np.zeros(frame.image.shape, bool))
            s = star_prob(frame)
            clean_core = core & keep & ~frame.mask
            tally("star_core_px", s[clean_core] > 0.5)
            tally("flagged_star_core_px", s[clean_core & (prob > 0.5)] > 0.5)
            tally("cr_px", s[frame.mask & keep] > 0.5)
            tally("bright_core_px", s[bright] > 0.5)
            tally("other_px", s[keep & ~core & ~frame.mask] > 0.5)
            for (kind, d), a in acc.items():
                shift = d * (core if kind == "oracle" else s)
                p = 1.0 / (1.0 + np.exp(-(logit + shift)))
                if has_stars:
                    a["flags"] += metrics.star_core_flags(p, frame.mask, peaks, radius_px=STAR_CORE_RADIUS_PX,
                                                          ignore=frame.ignore)
                a["bright"].append(p[bright])
                a["p"].append(p[keep].astype(np.float32))
                a["y"].append(frame.mask[keep])
        rows = []
        for (kind, d), a in acc.items():
            p, y, b = (np.concatenate(a[k]) for k in ("p", "y", "bright"))
            clean = np.sort(p[~y])[::-1]
            tpr = {f"tpr_pct_at_{100 * f:g}pct_fpr": float(100 * (p[y] > clean[int(f * clean.size)]).mean())
                   for f in (0.0005, 0.005)}
            rows.append({"s": kind, "delta": d, "star_core_pct": 100 * a["flags"].fraction,
                         "star_core_flagged": a["flags"].n_flagged, "bright_ge_0.99_pct": float(100 * (b >= 0.99).mean()),
                         **tpr, "ece": float(metrics.ece(p, y)), "nll": float(metrics.nll(p, y))})
        out[f"x{multiplier:g}"] = {"set_seed": seed, "rows": rows, "classifier_s_gt_0.5_of": found}
    return out


if __name__ == "__main__":
    sys.exit(main())
