"""Which k of the k-sigma label rule matches what a median-coadd difference flags on DECam frames.

deepCR's ``decam`` labels came from median-coadd differences (its model zoo: "a test set that
contains noise in cosmic ray labels").  The simulator labels DECam frames by a noise-free
k-sigma rule on the CR charge c (`simulate.sigma_mask`: c > k sqrt(b + rn^2), b the CR-free
model); this script picks k.

Run::

    OMP_NUM_THREADS=1 python benchmarks/decam_label_k.py [--frames 60] [--size 192] [--depth 5]

Per frame (the spec's fields, filters and exposure times, `frame_spec`; CRs at the spec's
training multiplier so that there is something to label):

* the reference: what a median-coadd difference at typical depth flags.  N exposures of the
  same field (``--depth``, default 5: DES DR1 coadds a few exposures per band) are the frame's
  CR-free model b, each with its own Poisson and read noise and its own CRs (other seeds of
  the same camera); the frame itself is one of them.  The difference D = d - median(others
  and d) is flagged like AstroDrizzle's driz_cr (itself a median-coadd difference): cores
  D > 3.5 s, their 3 x 3 neighbours D > 3.0 s, with s = sqrt(m + rn^2) sqrt(1 + pi / (2 N))
  (m the median; the median of N Gaussian draws has pi / (2 N) of one draw's variance) and no
  gradient term (the exposures are aligned);
* the true CR footprint: pixels with CR charge above 0.1 sigma;
* for each k: pixels labelled, share of the true footprint and of the CR charge they hold,
  and the agreement with the reference (precision, recall, IoU; F1 ranks k as IoU does).

k is chosen by the IoU with the reference pooled over all frames.  Printed as a Markdown table
(docs/simulation.md holds the run of record).
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from cosmiq_pyro.data import simulate  # noqa: E402

KS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
CORE_SNR, NEIGHBOUR_SNR = 3.5, 3.0  # driz_cr's default driz_cr_snr = "3.5 3.0"


def coadd_difference_mask(frame, depth, rng, other_crs):
    """The reference mask of ``frame`` from a median of ``depth`` exposures (module notes)."""
    b = frame.noiseless.astype(float)
    rn = frame.meta["read_noise_e"]
    gain = frame.meta["gain_e_per_adu"]

    def expose(cr):
        read = rng.poisson(np.maximum(b + cr, 0.0)) + rng.normal(0.0, rn, b.shape)
        return gain * np.round(read / gain)

    d = frame.image.astype(float)
    stack = np.stack([d] + [expose(cr) for cr in other_crs[:depth - 1]])
    m = np.median(stack, axis=0)
    s = np.sqrt(np.maximum(m, 0.0) + rn**2) * math.sqrt(1.0 + math.pi / (2 * depth))
    diff = d - m
    core = diff > CORE_SNR * s
    near_core = ndimage.maximum_filter(core, size=3)
    return (diff > NEIGHBOUR_SNR * s) & near_core


def measure(frame, reference):
    valid = ~frame.ignore
    cr, b = frame.cr_image.astype(float), frame.noiseless.astype(float)
    rn = frame.meta["read_noise_e"]
    sigma = np.sqrt(b + rn**2)
    footprint = (cr > 0.1 * sigma) & valid
    ref = reference & valid
    rows = {}
    for k in KS:
        label = simulate.sigma_mask(cr, b, rn, k) & valid
        rows[k] = dict(label=int(label.sum()), ref=int(ref.sum()), both=int((label & ref).sum()),
                       either=int((label | ref).sum()), footprint=int(footprint.sum()),
                       in_footprint=int((label & footprint).sum()),
                       charge=float(cr[footprint].sum()), charge_label=float(cr[label].sum()))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--depth", type=int, default=5, help="exposures in the median coadd")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    inst = simulate.resolve_instrument("DECam")
    multiplier = inst.simulation.cr_rate_multiplier
    totals = {k: {} for k in KS}
    rng = np.random.default_rng([args.seed, 99])
    for i in range(args.frames):
        spec = simulate.frame_spec(i, args.seed, instrument=inst)
        frame = simulate.simulate_frame(size=args.size, instrument=inst, cr_rate_multiplier=multiplier,
                                        label_rule="sigma", **spec)
        # the other exposures' CRs: the same camera and exposure time, other seeds (CR charge
        # does not depend on the scene: no CTE on DECam)
        others = [simulate.simulate_frame(size=args.size, instrument=inst, field="EX",
                                          filter=spec["filter"], exptime_s=spec["exptime_s"],
                                          seed=spec["seed"] + 1 + j, cr_rate_multiplier=multiplier,
                                          defects=()).cr_image.astype(float)
                  for j in range(args.depth - 1)]
        reference = coadd_difference_mask(frame, args.depth, rng, others)
        for k, row in measure(frame, reference).items():
            for key, value in row.items():
                totals[k][key] = totals[k].get(key, 0) + value
    n = args.frames
    print(f"DECam, {n} frames of {args.size}x{args.size} (spec's fields, filters, {inst.simulation.exptime_s} s), "
          f"CR rate x{multiplier:g}, median coadd of {args.depth} exposures, seed {args.seed}\n")
    print("| k | labelled px / frame | reference px / frame | share of true footprint | share of CR charge "
          "| precision vs reference | recall vs reference | IoU vs reference |")
    print("|---|---|---|---|---|---|---|---|")
    best = max(KS, key=lambda k: totals[k]["both"] / max(totals[k]["either"], 1))
    for k in KS:
        t = totals[k]
        iou = t["both"] / max(t["either"], 1)
        mark = " **(best)**" if k == best else ""
        print(f"| {k:g}{mark} | {t['label'] / n:.0f} | {t['ref'] / n:.0f} | {t['in_footprint'] / max(t['footprint'], 1):.3f} "
              f"| {t['charge_label'] / max(t['charge'], 1e-9):.3f} | {t['both'] / max(t['label'], 1):.3f} "
              f"| {t['both'] / max(t['ref'], 1):.3f} | {iou:.3f} |")
    print(f"\nbest k by IoU with the median-coadd-difference mask: {best:g}")


if __name__ == "__main__":
    main()
