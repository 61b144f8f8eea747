"""Could a learned head predict Monte Carlo's logit variance from the linearised pass? (issue 23,
a candidate after the second attempt; docs/predictive_methods.md, "Third attempt").

The second attempt found that the moment passes' epistemic error lies in the per-pixel logit
variance and that no calibration in ``(m, v)`` explains it.  This feasibility check asks whether
more features do, before anything is built: on the study reference (`moments_reference.py`,
T = 256 MC with the logit mean ``zmean`` and variance ``zvar`` of every pixel), it regresses
``log zvar - log v`` (``v`` the linearised pass's variance, ``m`` its mean, tempered) by ridge
least squares on the even frames and scores the odd frames:

* feature sets: a constant; a quadratic in ``(m, log v)``; plus the 32 channels of the posterior-
  mean net's decoder output (the input of its 1x1 head); plus the 32 channels of its first block;
* scores on the held-out frames: the residual SD of the log ratio (pixels with ``m > -15``) and the
  RMS error of the epistemic map (all valid pixels) with the predicted variance, beside T = 16 MC
  (the reference file's first seed) and two oracles: the reference's own variance with the
  linearised mean, and the reference's mean and variance (a Gaussian logit).

    OMP_NUM_THREADS=1 python benchmarks/moments_variance_head.py --ref /work/team/moments_ref
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.inference.adaptation import plain_net  # noqa: E402
from cosmiq_pyro.models.gaussian_moments import sigmoid_moments  # noqa: E402
from cosmiq_pyro.models.linear_moments import linear_logits, linear_weights  # noqa: E402
from cosmiq_pyro.models.registry import resolve  # noqa: E402
from cosmiq_pyro.utils.tiling import pad_to_grid  # noqa: E402

M_CUT = -15.0  # below it a pixel carries no epistemic term (< 3e-5 nats)
RIDGE = 1e-3


def frames_with_features(vi, ref: Path) -> list[dict]:
    """The reference frames with the linearised pass's tempered (m, v) and the mean net's
    decoder (``up``) and first-block (``inc``) activations, each (32, H, W)."""
    t = vi.temperature
    net, guide = resolve(vi, None)
    net.eval()
    lw = linear_weights(net, guide)
    twin = plain_net(vi).eval()
    acts = {}
    twin.up.register_forward_hook(lambda mod, inp, out: acts.__setitem__("up", out))
    twin.inc.register_forward_hook(lambda mod, inp, out: acts.__setitem__("inc", out))
    out = []
    for path in sorted(glob.glob(str(ref / "frame_*.npz"))):
        z = dict(np.load(path))
        h, w = z["image"].shape
        x = torch.from_numpy(pad_to_grid(z["image"]))[None, None]
        with torch.inference_mode():
            m, v = linear_logits(lw, x.contiguous(memory_format=torch.channels_last))
            twin.logits(x)
        out.append(dict(z, m=(m[0, 0, :h, :w] / t).double().numpy(), v=(v[0, 0, :h, :w] / t ** 2).double().numpy(),
                        up=acts["up"][0, :, :h, :w].numpy(), inc=acts["inc"][0, :, :h, :w].numpy()))
    return out


def design(r: dict, keep: np.ndarray) -> np.ndarray:
    """(n, 70) features of the pixels ``keep``: 1, m, m^2, log v, m log v, (log v)^2, up (32), inc (32)."""
    m, lv = r["m"][keep], np.log(r["v"][keep])
    cols = [np.ones_like(m), m, m ** 2, lv, lv * m, lv ** 2]
    cols += [r["up"][c][keep] for c in range(r["up"].shape[0])] + [r["inc"][c][keep] for c in range(r["inc"].shape[0])]
    return np.stack(cols, 1)


def epistemic(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    p, a = sigmoid_moments(torch.from_numpy(np.asarray(m, np.float64)), torch.from_numpy(np.asarray(v, np.float64)), 16)
    return ((-(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))) - a).clamp_min(0.0).numpy()


def rms_epistemic(frames: list[dict], maps) -> float:
    se = n = 0.0
    for r in frames:
        valid = ~r["ignore"]
        se += float(((maps(r) - r["epistemic"])[valid] ** 2).sum())
        n += int(valid.sum())
    return float(np.sqrt(se / n))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", type=Path, default=Path("/work/team/moments_ref"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "moments_out" / "variance_head.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    frames = frames_with_features(cq.load("ACS-WFC-VI"), args.ref)
    train, test = frames[0::2], frames[1::2]

    def keep(r):
        return ~r["ignore"] & (r["m"] > M_CUT)
    x = np.concatenate([design(r, keep(r)) for r in train])
    y = np.concatenate([np.log(r["zvar"][keep(r)]) - np.log(r["v"][keep(r)]) for r in train])
    rows = {}
    for name, ncol in (("constant", 1), ("quadratic in (m, log v)", 6), ("+ decoder features", 38),
                       ("+ first-block features", 70)):
        a = x[:, :ncol]
        beta = np.linalg.solve(a.T @ a + RIDGE * np.eye(ncol), a.T @ y)

        def log_var(r, beta=beta, ncol=ncol):
            lv = np.log(r["v"]).copy()
            k = keep(r)
            lv[k] += design(r, k)[:, :ncol] @ beta
            return lv
        resid = np.concatenate([np.log(r["zvar"][keep(r)]) - log_var(r)[keep(r)] for r in test])
        rows[name] = {"log_ratio_resid_sd": float(resid.std()),
                      "rms_epistemic_all": rms_epistemic(test, lambda r: epistemic(r["m"], np.exp(log_var(r))))}
    rows["iid MC, T = 16 (seed 0)"] = {"rms_epistemic_all": rms_epistemic(test, lambda r: r["epistemic16"][0])}
    rows["oracle: MC variance, linearised mean"] = {
        "rms_epistemic_all": rms_epistemic(test, lambda r: epistemic(r["m"], r["zvar"]))}
    rows["oracle: MC mean and variance"] = {
        "rms_epistemic_all": rms_epistemic(test, lambda r: epistemic(r["zmean"], r["zvar"]))}
    print(f"{len(train)} fit / {len(test)} scored frames")
    for name, r in rows.items():
        print(f"{name:40s} " + "  ".join(f"{k} {v:.4g}" for k, v in r.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"n_fit": len(train), "n_scored": len(test), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
