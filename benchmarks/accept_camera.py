"""Acceptance of a camera's Bayesian model on held-out simulated frames of that camera (issue 22,
item 2); `benchmarks/accept_published.py` runs the ACS-WFC table through the same code.

Predictors, all on the same frames (`cosmiq_pyro.evaluation.study.compare`):

* the camera's Bayesian model with every predictive method the package offers
  (`cosmiq_pyro.inference.methods.METHODS`: ``mc`` with T = 16 draws and ``moments``), its
  stored temperature (and moment calibration);
* deepCR's model for the camera (the spec's ``models.deepcr``; our deterministic twin of its
  weights with its input transform: ADU for ``decam``, standardised frames for ``WFC3-UVIS``);
* ``ACS-WFC-VI`` (T = 16), the cross-camera baseline (``--baseline none`` leaves it out).

Frames: ``--n`` (default 300) 256x256 frames of the camera (its spec's fields, filters,
exposure times, labelling rule and defects) simulated with dataset seeds ``HELD_OUT_SEED +
22_000`` (real CR rate) and ``HELD_OUT_SEED + 22_500`` (boosted rate): frame seeds >= 2**32,
disjoint from every frame `adapt` trains, validates or fits novelty on (its recipe's seeds 13-16
hash to seeds < 2**32, `cosmiq_pyro.data.seeds`).  The real CR rate is the test of record; a
camera whose spec trains at a boosted rate (``simulation.cr_rate_multiplier``: DECam's 50)
also gets a set at that rate, since the real rate leaves few CR pixels on ground frames.

A model trained at a boosted rate carries a prior-shift correction to the real rate
(`cosmiq_pyro.inference.prior_shift`); on the boosted set it is told that set's rate
(`at_rate`), as a user predicting frames with that many CRs would.

Metrics: `compare`'s table (TPR at 0.05 % and 0.5 % FPR, Brier, NLL, ECE, AURC, error AUROC of
the entropy) plus, from the same cached maps (`extra_rows`): Brier / NLL / ECE on candidate
pixels (truth CR or p > 0.01; per predictor and on the union of every predictor's candidates),
the share of bright CR cores (truth CR pixels whose CR charge exceeds 50 sigma of the pixel's
noise without the CR) at p >= 0.99, and, on frames with a seeing-limited PSF, the share of
pixels within 2 px of the peak of a star with S/N > 50 (`metrics.star_snr`) flagged at p > 0.5
(`metrics.star_core_flags`: not ignored, not truth CR pixels; also counted with the ignored,
i.e. saturated, pixels).

Criteria (`criteria`, issue 22 item 2), for each method of the camera's model against deepCR's:
TPR at both FPRs at least deepCR's; Brier, NLL, ECE (all pixels and union of candidates) below;
AURC lower; error AUROC higher; >= 95 % of bright CR cores at p >= 0.99; on seeing-limited
frames, the star-core share at most deepCR's and at most 0.1 %.

Writes ``<out>/<set>/`` (compare's table and figures, ``extra.csv``, ``summary.csv``),
``<out>/criteria.md`` and ``<out>/acceptance.json``::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/accept_camera.py --camera DECam \\
        --model /path/DECam-VI.pth --out benchmarks/camera_acceptance/DECam
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.data.seeds import HELD_OUT_SEED  # noqa: E402
from cosmiq_pyro.data.simulate import STAR_CORE_RADIUS_PX, bright_star_peaks  # noqa: E402
from cosmiq_pyro.evaluation import metrics  # noqa: E402
from cosmiq_pyro.evaluation.peers import ModelPredictor, PeerPrediction  # noqa: E402
from cosmiq_pyro.evaluation.study import compare  # noqa: E402
from cosmiq_pyro.evaluation.study.collect import _frame_seed  # noqa: E402
from cosmiq_pyro.inference.methods import DEFAULT_T, METHODS  # noqa: E402
from cosmiq_pyro.inference.prior_shift import SECTION as PRIOR_SHIFT, logit_shift, with_prior_shift  # noqa: E402
from cosmiq_pyro.instruments import get_instrument  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402

HELD_OUT_REAL = HELD_OUT_SEED + 22_000
HELD_OUT_BOOSTED = HELD_OUT_SEED + 22_500
BRIGHT_SIGMA = 50.0      # bright CR core: CR charge > 50 sigma of the pixel's noise without the CR
STAR_MAX_SHARE = 0.001   # at most 0.1 % of them flagged
BRIGHT_MIN_SHARE = 0.95  # at least 95 % of bright CR cores at p >= 0.99
CANDIDATE_P = 0.01       # candidate pixel: truth CR or p > 0.01
#: summary columns of the printed tables
COLUMNS = ["predictor", "tpr_pct_at_0.05pct_fpr", "tpr_pct_at_0.5pct_fpr", "brier", "nll", "ece",
           "brier_union_candidates", "nll_union_candidates", "ece_union_candidates", "aurc",
           "error_auroc_entropy", "bright_core_frac_p_ge_0.99", "star_core_frac_p_gt_0.5"]


class Cached:
    """A predictor whose maps are computed once per (image, seed) and kept (`compare` and
    `extra_rows` then see the same maps).

    With ``directory``, the maps are also stored there (one ``.npz`` per frame, named by
    ``tag``, the image's hash and the seed) and read back by later runs: a run can be resumed,
    and the maps of predictors that do not change (deepCR's model, the baseline) computed ahead.
    ``tag`` must name the predictor fully (model file hash, method, draws).
    """

    def __init__(self, inner, directory: Path | None = None, tag: str | None = None):
        self.inner, self.is_probability, self.maps = inner, inner.is_probability, {}
        if directory is not None and not tag:
            raise ValueError("a Cached predictor with a directory needs its tag")
        self.directory, self.tag = (None if directory is None else Path(directory)), tag

    def predict(self, image, ignore=None, meta=None, seed=0):
        key = (hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), seed)
        if key not in self.maps:
            path = None if self.directory is None else self.directory / f"{self.tag}_{key[0][:16]}_{seed}.npz"
            if path is not None and path.is_file():
                with np.load(path) as z:
                    self.maps[key] = PeerPrediction(
                        prob=z["prob"], entropy=z["entropy"] if "entropy" in z else None,
                        epistemic=z["epistemic"] if "epistemic" in z else None,
                        T=None if int(z["T"]) < 0 else int(z["T"]), is_probability=bool(z["is_probability"]))
            else:
                pred = self.inner.predict(image, ignore=ignore, meta=meta, seed=seed)
                self.maps[key] = pred
                if path is not None:
                    arrays = {k: getattr(pred, k) for k in ("prob", "entropy", "epistemic") if getattr(pred, k) is not None}
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # two runs on one cache do not clash
                    np.savez(tmp, T=-1 if pred.T is None else pred.T, is_probability=pred.is_probability, **arrays)
                    tmp.replace(path)
        return self.maps[key]


def model_tag(label: str, model) -> str:
    """A file-name-safe tag for `Cached`: the label, the model file's SHA-256 (12 hex) and, for a
    model told another CR rate than the real one (`at_rate`), that rate."""
    digest = "nofile"
    if getattr(model, "weights_file", None):
        digest = hashlib.sha256(Path(model.weights_file).read_bytes()).hexdigest()[:12]
    state = (getattr(model, "sections", None) or {}).get(PRIOR_SHIFT)
    if state is not None and state["use_cr_rate_multiplier"] != 1.0:
        digest += f"_rate{state['use_cr_rate_multiplier']:g}"
    return "".join(c if c.isalnum() or c in "-." else "_" for c in label) + "_" + digest


def method_predictors(name: str, model, T: int = DEFAULT_T, cache: Path | None = None) -> dict:
    """``{label: predictor}``: the Bayesian ``model`` with every predictive method the package
    offers (Monte Carlo with ``T`` draws, and each sampling-free method)."""
    out = {}
    for method, spec in METHODS.items():
        label = f"{name} {method}" + (f" T={T}" if spec.sampling else "")
        out[label] = Cached(ModelPredictor(model, method=method, T=T if spec.sampling else None), cache,
                            model_tag(label, model))
    return out


def at_rate(model, multiplier: float):
    """``model`` told the CR rate of the frames it predicts (``multiplier`` times the camera's real
    rate): a model trained at a boosted rate carries a prior-shift correction to the real rate
    (`cosmiq_pyro.inference.prior_shift`), re-set here for ``multiplier`` (a copy); any other
    model as it is."""
    state = (getattr(model, "sections", None) or {}).get(PRIOR_SHIFT)
    if state is None or multiplier == state["use_cr_rate_multiplier"]:
        return model
    return with_prior_shift(dataclasses.replace(model, sections=dict(model.sections)),
                            state["train_cr_rate_multiplier"], multiplier)


def held_out_set(camera: str, n: int, seed: int, cr_rate_multiplier: float = 1.0, **options) -> SimulatedDataset:
    """``n`` held-out 256x256 frames of ``camera`` (its spec's frame settings unless ``options``)."""
    return SimulatedDataset(n, size=256, seed=seed, instrument=camera, cr_rate_multiplier=cr_rate_multiplier,
                            **options)


def extra_rows(predictors: dict, ds: SimulatedDataset, compare_seed: int) -> pd.DataFrame:
    """Candidate-pixel calibration, bright-core probabilities and star-core flags, from the maps
    `compare` computed (same per-frame seeds, so `Cached` predictors are not rerun)."""
    rows = []
    pooled = {name: dict(p=[], y=[], bright=[], stars=metrics.StarCoreFlags(0, 0), stars_all=metrics.StarCoreFlags(0, 0))
              for name in predictors}
    scale = ds.instrument.detector.pixel_scale_arcsec
    n_stars, seeing = 0, False
    for i in range(len(ds)):
        frame = ds.frame(i)
        keep = ~frame.ignore
        noise = np.sqrt(frame.noiseless + frame.meta["read_noise_e"] ** 2)
        bright = frame.mask & (frame.cr_image > BRIGHT_SIGMA * noise)
        peaks = bright_star_peaks(frame, scale)  # stars with S/N > 50 (simulate.STAR_MIN_SNR)
        if peaks is not None:
            seeing, n_stars = True, n_stars + len(peaks)
        for name, pred in predictors.items():
            maps = pred.predict(frame.image, ignore=frame.ignore, meta=frame.meta, seed=_frame_seed(compare_seed, i))
            part = pooled[name]
            part["p"].append(maps.prob[keep])
            part["y"].append(frame.mask[keep])
            part["bright"].append(maps.prob[bright & keep])
            if peaks is not None:
                part["stars"] += metrics.star_core_flags(maps.prob, frame.mask, peaks, radius_px=STAR_CORE_RADIUS_PX,
                                                         ignore=frame.ignore)
                part["stars_all"] += metrics.star_core_flags(maps.prob, frame.mask, peaks, radius_px=STAR_CORE_RADIUS_PX)
    union = None  # the candidates of every predictor: one common pixel set
    for part in pooled.values():
        p, y = np.concatenate(part["p"]), np.concatenate(part["y"])
        union = (y | (p > CANDIDATE_P)) if union is None else union | (p > CANDIDATE_P)
    nan = float("nan")
    for name, part in pooled.items():
        p, y, b = (np.concatenate(part[k]) for k in ("p", "y", "bright"))
        cand = y | (p > CANDIDATE_P)
        rows.append({"predictor": name, "n_candidate_px": int(cand.sum()),
                     "brier_candidates": metrics.brier(p[cand], y[cand]),
                     "nll_candidates": metrics.nll(p[cand], y[cand]),
                     "ece_candidates": metrics.ece(p[cand], y[cand]),
                     "n_union_candidate_px": int(union.sum()),
                     "brier_union_candidates": metrics.brier(p[union], y[union]),
                     "nll_union_candidates": metrics.nll(p[union], y[union]),
                     "ece_union_candidates": metrics.ece(p[union], y[union]),
                     "n_bright_core_px": int(b.size),
                     "bright_core_frac_p_ge_0.99": float((b >= 0.99).mean()) if b.size else nan,
                     "bright_core_median_p": float(np.median(b)) if b.size else nan,
                     "n_stars_snr_gt_50": n_stars if seeing else 0,
                     "n_star_core_px": part["stars"].n_px,
                     "star_core_frac_p_gt_0.5": part["stars"].fraction if seeing else nan,
                     "n_star_core_px_incl_ignored": part["stars_all"].n_px,
                     "star_core_frac_incl_ignored": part["stars_all"].fraction if seeing else nan})
    return pd.DataFrame(rows)


#: appended to compare's table.md when maps come from ``--cache``
CACHE_TIMING_NOTE = ("\nThe maps of {} were read from `--cache` where stored (computed and stored otherwise): "
                     "their \"s / frame\" is then the time to read them, not the prediction time.\n")


def evaluate_set(predictors: dict, ds: SimulatedDataset, out: Path, T: int, label: str) -> pd.DataFrame:
    """`compare` on ``ds`` plus `extra_rows`; writes ``out`` (table, figures, extra.csv,
    summary.csv) and returns the overall summary (one row per predictor)."""
    result = compare(predictors, ds, out_dir=out, T=T, seed=0, progress=False)
    stored = [name for name, pred in predictors.items() if isinstance(pred, Cached) and pred.directory is not None]
    if stored:  # compare's timing column then measures reading the stored maps
        with open(out / "table.md", "a") as table:
            table.write(CACHE_TIMING_NOTE.format(", ".join(stored)))
    extra = extra_rows(predictors, ds, compare_seed=0)
    extra.to_csv(out / "extra.csv", index=False)
    overall = result.table[(result.table["field"] == "all") & (result.table["filter"] == "all")]
    summary = overall.merge(extra, on="predictor")
    summary.to_csv(out / "summary.csv", index=False)
    n_cr = int(summary["n_cr_pixels"].iloc[0])
    print(f"\n== {label}: {len(ds)} frames, {n_cr} CR pixels")
    print(summary[[c for c in COLUMNS if c in summary]].to_string(index=False), flush=True)
    return summary


#: (column, rule, target) of issue 22 item 2; rule "ge"/"lt"/"gt"/"le" against deepCR's value,
#: or a fixed bound (then target is the bound)
CRITERIA = [
    ("tpr_pct_at_0.05pct_fpr", "ge", "deepCR"), ("tpr_pct_at_0.5pct_fpr", "ge", "deepCR"),
    ("brier", "lt", "deepCR"), ("nll", "lt", "deepCR"), ("ece", "lt", "deepCR"),
    ("brier_union_candidates", "lt", "deepCR"), ("nll_union_candidates", "lt", "deepCR"),
    ("ece_union_candidates", "lt", "deepCR"), ("aurc", "lt", "deepCR"), ("error_auroc_entropy", "gt", "deepCR"),
    ("bright_core_frac_p_ge_0.99", "ge", BRIGHT_MIN_SHARE),
    ("star_core_frac_p_gt_0.5", "le", "deepCR"), ("star_core_frac_p_gt_0.5", "le", STAR_MAX_SHARE),
]
_OPS = {"ge": (np.greater_equal, ">="), "le": (np.less_equal, "<="), "lt": (np.less, "<"), "gt": (np.greater, ">")}


def criteria(summary: pd.DataFrame, models: list, reference: str, label: str) -> pd.DataFrame:
    """Pass / fail of each criterion for each of ``models`` (predictor names) against the
    ``reference`` (deepCR's) row of ``summary``; criteria whose values are NaN (stars on
    frames without a seeing-limited PSF) are left out."""
    rows = []
    ref = summary.set_index("predictor").loc[reference]
    for model in models:
        row = summary.set_index("predictor").loc[model]
        for column, rule, target in CRITERIA:
            value = float(row[column])
            bound = float(ref[column]) if target == "deepCR" else float(target)
            if np.isnan(value) or np.isnan(bound):
                continue
            op, sign = _OPS[rule]
            rows.append({"set": label, "predictor": model, "metric": column,
                         "rule": f"{sign} {'deepCR' if target == 'deepCR' else target}",
                         "value": value, "bound": bound, "pass": bool(op(value, bound))})
    return pd.DataFrame(rows)


def markdown_criteria(table: pd.DataFrame) -> str:
    lines = ["| set | predictor | metric | rule | value | bound | pass |", "|---|---|---|---|---|---|---|"]
    for r in table.to_dict(orient="records"):
        lines.append(f"| {r['set']} | {r['predictor']} | {r['metric']} | {r['rule']} | {r['value']:.6g} | "
                     f"{r['bound']:.6g} | {'PASS' if r['pass'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"


def markdown_summary(summary: pd.DataFrame) -> str:
    cols = [c for c in COLUMNS if c in summary]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "".join("| " + " | ".join(str(v) if isinstance(v, str) else f"{v:.4g}" for v in row) + " |\n"
                   for row in summary[cols].itertuples(index=False))
    return head + body


def run_info() -> dict:
    """Commit, UTC time, machine and load average, for the docs."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {"commit": commit + ("+dirty" if dirty else ""), "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "machine": f"{os.cpu_count()}-core CPU dev machine, no GPU",
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "torch_threads": torch.get_num_threads()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camera", required=True, help="shipped camera spec name (WFC3-UVIS, DECam, ACS-WFC)")
    p.add_argument("--model", required=True, help="the camera's Bayesian model: published name or checkpoint")
    p.add_argument("--name", default=None, help="its label in the tables (default: the checkpoint's stem)")
    p.add_argument("--deepcr", default=None, help="deepCR's model for the camera (default: the spec's)")
    p.add_argument("--baseline", default="ACS-WFC-VI", help="cross-camera baseline ('none' to leave out)")
    p.add_argument("--n", type=int, default=300, help="held-out frames per set")
    p.add_argument("--T", type=int, default=DEFAULT_T)
    p.add_argument("--boost", type=float, default=None,
                   help="CR-rate multiplier of the boosted set (default: the spec's training multiplier; 1: none)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=None, help="directory of stored maps (resume; computed ahead)")
    p.add_argument("--precompute", action="store_true",
                   help="only compute (into --cache) the maps of deepCR's model and the baseline, then stop")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.precompute and args.cache is None:
        p.error("--precompute needs --cache")
    torch.set_num_threads(args.threads)
    started, commit = time.time(), run_info()["commit"]  # the code that runs
    spec = get_instrument(args.camera)
    name = args.name or Path(args.model).stem
    deepcr_name = args.deepcr or spec.models.deepcr
    boost = float(spec.simulation.cr_rate_multiplier) if args.boost is None else args.boost
    model = None if args.precompute else load_model(args.model)
    deepcr = load_model(deepcr_name)
    baseline = None if args.baseline == "none" else load_model(args.baseline)
    sets = [("real rate", "real", HELD_OUT_REAL, 1.0)]
    if boost != 1.0:
        sets.append((f"boosted rate x{boost:g}", "boosted", HELD_OUT_BOOSTED, boost))
    args.out.mkdir(parents=True, exist_ok=True)
    summaries, verdicts = {}, []
    for label, folder, seed, multiplier in sets:
        predictors = {} if args.precompute else method_predictors(name, at_rate(model, multiplier), args.T, args.cache)
        deepcr_label = f"deepCR {deepcr_name}"
        predictors[deepcr_label] = Cached(ModelPredictor(deepcr), args.cache, model_tag(deepcr_label, deepcr))
        if baseline is not None:
            base_label = f"{args.baseline} mc T={args.T}"
            predictors[base_label] = Cached(ModelPredictor(baseline, T=args.T), args.cache,
                                            model_tag(base_label, baseline))
        ds = held_out_set(args.camera, args.n, seed, multiplier)
        if args.precompute:
            for i in range(len(ds)):
                frame = ds.frame(i)
                for pred in predictors.values():
                    pred.predict(frame.image, ignore=frame.ignore, seed=_frame_seed(0, i))
                    pred.maps.clear()  # kept on disk only
                if i % 25 == 24:
                    print(f"{label}: {i + 1} of {len(ds)} frames, {time.time() - started:.0f} s", flush=True)
            continue
        summary = evaluate_set(predictors, ds, args.out / folder, args.T, f"{args.camera}, {label}")
        summaries[folder] = summary
        verdict = criteria(summary, [k for k in predictors if k.startswith(name + " ")], deepcr_label, label)
        verdicts.append(verdict)
        print(verdict.to_string(index=False), flush=True)
        del predictors  # the cached maps of this set
    if args.precompute:
        return 0
    verdict = pd.concat(verdicts, ignore_index=True)
    info = {**run_info(), "commit": commit}
    info.update(camera=args.camera, model=str(args.model), model_temperature=model.temperature,
                prior_shift={folder: logit_shift(at_rate(model, m)) for _, folder, _, m in sets},
                moments_section=(model.sections or {}).get("moments"), deepcr=deepcr_name, baseline=args.baseline,
                n_frames=args.n, T=args.T, sets={folder: {"seed": seed, "cr_rate_multiplier": m}
                                                  for _, folder, seed, m in sets},
                seconds=round(time.time() - started))
    text = [f"# {args.camera} acceptance of {name}\n", f"{info['utc']} UTC, commit {info['commit']}, {info['machine']}, "
            f"load average {info['load_average_1_5_15']}; {args.n} held-out 256x256 frames per set, "
            f"{info['seconds']} s\n"]
    for (label, folder, seed, m), summary in zip(sets, summaries.values()):
        text += [f"\n## {label} (seed {seed}, {int(summary['n_cr_pixels'].iloc[0])} CR pixels)\n\n", markdown_summary(summary)]
    text += ["\n## Criteria (issue 22, item 2)\n\n", markdown_criteria(verdict)]
    (args.out / "criteria.md").write_text("".join(text))
    (args.out / "acceptance.json").write_text(json.dumps(
        {"run": info, "summary": {k: v.to_dict(orient="records") for k, v in summaries.items()},
         "criteria": verdict.to_dict(orient="records")}, indent=1, default=float) + "\n")
    print(f"\n{int(verdict['pass'].sum())} of {len(verdict)} criteria pass; {time.time() - started:.0f} s")
    return 0


# ---------------------------------------------------------------- real frames (gmos.fits)

GMOS_CRS = ((slice(41, 72), slice(142, 161)), (slice(117, 147), slice(35, 43)))  # rows, cols
GMOS_READ_NOISE_E = 4.24  # astroscrappy's test


def gmos_electrons() -> np.ndarray:
    """astroscrappy's ``gmos.fits`` SCI cutout as stored: already in electrons (reduced with DRAGONS;
    its VAR plane grows by 0.99 per electron of SKYFIT, i.e. Poisson in electrons), float32.

    (`cosmiq_pyro.evaluation.shifts.real_ground_frames` multiplies it by astroscrappy's test gain
    1.933, treating it as ADU: this reads it without that factor.)
    """
    import astroscrappy
    from astropy.io import fits

    path = Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits"
    with fits.open(path, memmap=False) as hdul:
        return hdul["SCI"].data.astype(np.float32)


def gmos_row(name: str, prob: np.ndarray, threshold: float = 0.5) -> dict:
    """One predictor's gmos.fits row: pixels flagged (``p > threshold``) and largest p in each
    known CR box, the flagged groups (8-connected) outside them; ``pass`` when both CRs and no
    other group over 20 px are flagged, ``pass_strict`` when no other group at all."""
    flagged = prob > threshold
    labels, n = ndimage.label(flagged, structure=np.ones((3, 3)))
    known = set()
    row = {"predictor": name}
    for k, box in enumerate(GMOS_CRS, 1):
        known |= set(np.unique(labels[box])) - {0}
        row[f"cr{k}_flagged_px"] = int(flagged[box].sum())
        row[f"cr{k}_max_p"] = float(prob[box].max())
    sizes = ndimage.sum(flagged, labels, index=np.arange(1, n + 1))
    other = [int(s) for lab, s in zip(range(1, n + 1), sizes) if lab not in known]
    row["other_groups"] = len(other)
    row["other_groups_gt20px"] = sum(s > 20 for s in other)
    row["largest_other_px"] = max(other, default=0)
    both = row["cr1_flagged_px"] > 0 and row["cr2_flagged_px"] > 0
    row["pass"] = bool(both and row["other_groups_gt20px"] == 0)
    row["pass_strict"] = bool(both and row["other_groups"] == 0)
    return row


if __name__ == "__main__":
    sys.exit(main())
