"""Reference predictive for the sampling-free study (issue 23, item 1): T = 256 MC of the shipped
``ACS-WFC-VI`` on held-out simulated frames of every field and filter, plus T = 16 MC with 5 seeds
(the spread a cheaper method is judged against).

Frames: for each of the 9 (field, filter) pairs (EX/GC/GAL x F435W/F606W/F814W) ``--per-pair``
(default 3) 256x256 frames, ``SimulatedDataset(seed=HELD_OUT_SEED + 23_000 + 100 * pair)`` (frame
seeds >= 2**32: disjoint from every training frame), driz_cr labels, defects on, 100-1200 s.

Each frame's MC maps are computed with the package's own fast path (posterior draws made by
`inference.draws.weight_chunks` with the given seed, as `predict` makes them, batch norm folded, `models.fused.fused_logits`
untiled), the logits divided by the model's stored temperature, then, in float64,
``p = mean sigma(z_t)``, ``aleatoric = mean H[sigma(z_t)]``, ``entropy = H(p)``,
``epistemic = entropy - aleatoric``.  The first frame is checked against `cosmiq_pyro.predict`
(same seed, same T) to float tolerance.  Also stored: the mean and variance over draws of the
tempered logit (``zmean``, ``zvar``), which the moment pass predicts.

One ``frame_NN.npz`` per frame in ``--out`` (default /work/team/moments_ref): ``image``, ``mask``
(truth), ``ignore``, ``prob``, ``entropy``, ``aleatoric``, ``epistemic``, ``zmean``, ``zvar`` (T=256,
seed 0) and ``prob16``, ``entropy16``, ``aleatoric16``, ``epistemic16`` of shape (5, H, W) (T = 16,
seeds 1..5); ``field``, ``filter``, ``exptime_s``, ``frame_seed``.

    python benchmarks/moments_reference.py --out /work/team/moments_ref
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cosmiq_pyro as cq  # noqa: E402
from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.data.seeds import HELD_OUT_SEED  # noqa: E402
from cosmiq_pyro.inference.predictive import pad_to_grid, predict  # noqa: E402
from cosmiq_pyro.inference.draws import weight_chunks  # noqa: E402
from cosmiq_pyro.models.fused import fuse_weights, fused_logits  # noqa: E402
from cosmiq_pyro.utils.torchtools import eval_mode  # noqa: E402

FIELDS = ("EX", "GC", "GAL")
FILTERS = ("F435W", "F606W", "F814W")
REF_SEED = HELD_OUT_SEED + 23_000
T_REF, T_MC, MC_SEEDS = 256, 16, (1, 2, 3, 4, 5)


def reference_frames(per_pair: int = 3, spread: bool = False):
    """The study's frames ``(n, frame)``: ``per_pair`` per (field, filter), numbered in a fixed
    order (``spread``: yielded one frame of every pair first, last pair first, so a second
    process shares the work and every pair is covered early)."""
    pairs = [(f, g) for f in FIELDS for g in FILTERS]
    order = [(k, i) for k in range(len(pairs)) for i in range(per_pair)]
    numbered = list(enumerate(order))
    if spread:
        numbered.sort(key=lambda item: (item[1][1], -item[1][0]))
    for n, (k, i) in numbered:
        field, flt = pairs[k]
        yield n, SimulatedDataset(per_pair, size=256, fields=(field,), filters=(flt,), seed=REF_SEED + 100 * k).frame(i)


def mc_maps(vi, image: np.ndarray, T: int, seed: int, chunk: int = 16) -> dict:
    """T-draw MC maps of one (H, W) image (even sides), float64, tempered by ``vi.temperature``."""
    net = vi.model
    x = torch.from_numpy(pad_to_grid(image))[None, None]
    h, w = image.shape
    sum_p = sum_h = sum_z = sum_z2 = 0.0
    with eval_mode(net), torch.inference_mode():
        for draws in weight_chunks(net, vi.guide, T, seed, chunk=chunk):  # predict's draws; memory does not grow with T
            fw = fuse_weights(net, draws)
            z = fused_logits(fw, x)[0, :, 0, :h, :w].double() / vi.temperature  # (k, H, W)
            p = torch.sigmoid(z)
            sum_p = sum_p + p.sum(0)
            sum_h = sum_h + (torch.nn.functional.softplus(z, threshold=50.0) - z * p).sum(0)
            sum_z = sum_z + z.sum(0)
            sum_z2 = sum_z2 + (z * z).sum(0)
    prob, alea = sum_p / T, sum_h / T
    ent = -(prob * torch.log(prob.clamp_min(1e-300)) + (1 - prob) * torch.log((1 - prob).clamp_min(1e-300)))
    zmean = sum_z / T
    return {"prob": prob.numpy(), "entropy": ent.numpy(), "aleatoric": alea.numpy(),
            "epistemic": np.maximum(ent - alea, 0.0).numpy(), "zmean": zmean.numpy(),
            "zvar": (sum_z2 / T - zmean ** 2).clamp_min(0.0).numpy()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/work/team/moments_ref"))
    p.add_argument("--per-pair", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--spread", action="store_true",
                   help="one frame of every pair first, last pair first (a second process shares the work)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    vi = cq.load("ACS-WFC-VI")
    started = time.time()
    for n, frame in reference_frames(args.per_pair, args.spread):
        path = args.out / f"frame_{n:02d}.npz"
        if path.exists() or path.with_suffix(".lock").exists():
            continue
        path.with_suffix(".lock").touch()
        ref = mc_maps(vi, frame.image, T_REF, seed=0)
        if n == 0:  # the fast path equals predict's
            check = predict(vi, frame.image, T=T_REF, seed=0, progress=False, novelty=False)
            err = float(np.abs(check.prob - ref["prob"]).max())
            assert err < 1e-4, f"reference differs from predict by {err}"
        small = [mc_maps(vi, frame.image, T_MC, seed=s) for s in MC_SEEDS]
        extra = {f"{k}16": np.stack([m[k] for m in small]).astype(np.float32)
                 for k in ("prob", "entropy", "aleatoric", "epistemic")}
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, image=frame.image.astype(np.float32), mask=frame.mask, ignore=frame.ignore,
                            **{k: v.astype(np.float32) for k, v in ref.items()}, **extra,
                            field=frame.meta["field"], filter=frame.meta["filter"],
                            exptime_s=frame.meta["exptime_s"], frame_seed=frame.meta["seed"])
        tmp.rename(path)
        path.with_suffix(".lock").unlink()
        print(f"frame {n:02d} {frame.meta['field']} {frame.meta['filter']} done, {time.time() - started:.0f} s",
              flush=True)
    (args.out / "run.json").write_text(json.dumps({"model": "ACS-WFC-VI", "temperature": vi.temperature,
                                                   "T_ref": T_REF, "T_mc": T_MC, "mc_seeds": MC_SEEDS,
                                                   "ref_seed": 0, "dataset_seed": REF_SEED,
                                                   "per_pair": args.per_pair}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
