"""A wider start model with the same function: for the capacity experiment on DECam star cores
(issue 22; docs/models.md "Does a wider net flag fewer star cores?").

Net2WiderNet-style widening (Chen, Goodfellow & Shlens 2016, arXiv 1511.05641) of a
`UNet2Sigmoid` from ``h`` to ``H > h`` first-level channels (``2h`` to ``2H`` at the second
level): every new channel copies a randomly chosen old one (its incoming weights, bias and
batch-norm parameters and statistics), and every convolution that reads a copied channel divides
that channel's outgoing weights by the number of its copies, so

.. math:: \\sum_{j : g(j) = k} \\frac{W_{o j}}{n_k} a_j = W_{o k} a_k

and the wider net computes the same logits (checked here to float tolerance).  The copies start
equal; a Bayesian fit from this start breaks the symmetry through its independent posterior
noise.  The output is a checkpoint that ``cosmiq adapt --from`` reads, carrying the source's
input transform.

    python benchmarks/widen_start.py --from DECam-VI --hidden 48 --out /tmp/DECam-wide48-start.pth
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmiq_pyro.inference.adaptation import plain_net  # noqa: E402
from cosmiq_pyro.models.registry import load_model, save  # noqa: E402
from cosmiq_pyro.models.results import FitResult  # noqa: E402
from cosmiq_pyro.models.unet import UNet2Sigmoid  # noqa: E402


def channel_map(old: int, new: int, rng: np.random.Generator) -> np.ndarray:
    """``g``: new channel -> the old channel it copies (identity on the first ``old``)."""
    return np.concatenate([np.arange(old), rng.integers(0, old, new - old)])


def widen(net: UNet2Sigmoid, hidden: int, seed: int = 0) -> UNet2Sigmoid:
    """``net`` widened to ``hidden`` first-level channels, computing the same function."""
    if net.norm != "batch":
        raise ValueError(f"only batch-norm nets are widened here, got norm={net.norm!r}")
    if hidden < net.hidden:
        raise ValueError(f"hidden must be >= the net's {net.hidden}, got {hidden}")
    rng = np.random.default_rng(seed)
    h = net.hidden
    g1, g2 = channel_map(h, hidden, rng), channel_map(2 * h, 2 * hidden, rng)
    n1, n2 = np.bincount(g1, minlength=h), np.bincount(g2, minlength=2 * h)
    wide = UNet2Sigmoid(n_channels=net.n_channels, n_classes=net.n_classes, hidden=hidden, norm=net.norm)
    old, new = net.state_dict(), wide.state_dict()
    ident = np.arange(net.n_channels)
    # (conv, batch norm or None, input map, input copy counts, output map); up.block.conv1 reads
    # [skip, upsampled]: both halves first-level channels
    cat_map = np.concatenate([g1, h + g1])
    cat_counts = np.concatenate([n1, n1])
    layers = [("inc.conv1", "inc.norm1", ident, np.ones(net.n_channels, int), g1),
              ("inc.conv2", "inc.norm2", g1, n1, g1),
              ("down.block.conv1", "down.block.norm1", g1, n1, g2),
              ("down.block.conv2", "down.block.norm2", g2, n2, g2),
              ("up.block.conv1", "up.block.norm1", cat_map, cat_counts, g1),
              ("up.block.conv2", "up.block.norm2", g1, n1, g1),
              ("head", None, g1, n1, np.arange(net.n_classes))]
    for conv, norm, gin, counts, gout in layers:
        w = old[f"{conv}.weight"]  # (out, in, k, k)
        scale = torch.as_tensor(1.0 / counts[gin], dtype=w.dtype)  # (in,)
        new[f"{conv}.weight"] = w[gout][:, gin] * scale[None, :, None, None]
        new[f"{conv}.bias"] = old[f"{conv}.bias"][gout]
        if norm is not None:
            for part in ("weight", "bias", "running_mean", "running_var"):
                new[f"{norm}.{part}"] = old[f"{norm}.{part}"][gout]
    # the transposed convolution: weight (in = 2h, out = h, 2, 2), reads the second level
    w = old["up.upsample.weight"]
    scale = torch.as_tensor(1.0 / n2[g2], dtype=w.dtype)
    new["up.upsample.weight"] = w[g2][:, g1] * scale[:, None, None, None]
    new["up.upsample.bias"] = old["up.upsample.bias"][g1]
    wide.load_state_dict(new)
    return wide.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="start", required=True, help="model to widen (a Bayesian one: its posterior means)")
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    source = load_model(args.start)
    net = plain_net(source).eval()
    wide = widen(net, args.hidden, args.seed)
    x = torch.from_numpy(np.random.default_rng(1).gamma(2.0, 300.0, (1, 1, 96, 96)).astype(np.float32))
    x[..., 40, 30:36] += 5000.0  # a CR-like streak
    with torch.no_grad():
        a, b = net.logits(x), wide.logits(x)
    err = float((a - b).abs().max())
    print(f"max |logit difference| {err:.2e} (logits up to {float(a.abs().max()):.1f})")
    if err > 1e-3 * max(1.0, float(a.abs().max())):
        raise SystemExit("the widened net does not compute the same logits")
    save(args.out, FitResult(model=wide, input_transform=source.input_transform))
    print(f"wrote {args.out}: hidden {net.hidden} -> {args.hidden}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
