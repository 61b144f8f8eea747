"""Refit a model's novelty model with the package recipe's novelty keys, weights untouched.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/refit_novelty.py MODEL [--out PATH] [--instrument CAMERA]
                                                                   [--set KEY=VALUE ...]

``MODEL`` is a checkpoint path or a published name (``ACS-WFC-VI``: the package's own file is
rewritten in place unless ``--out`` is given).  `cosmiq_pyro.inference.novelty_refit.refit_novelty`
does the work (the recipe's novelty frames of the model's camera, ignored pixels left out; the
checkpoint rewritten atomically, the weights' SHA-256 checked unchanged).  For a published model
whose JSON beside it records ``weights_sha256`` (``ACS-WFC-VI.json``), the digest is checked
against it before and after, and the JSON gains a ``novelty_refit`` entry (when, what, the
commit; a JSON that copies the model card, as ``adapt``'s models' do, gets the card's refitted
``recipe``, ``data`` and ``validation``); with ``--out`` the JSON is left alone.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmiq_pyro.inference.novelty_refit import refit_novelty  # noqa: E402
from cosmiq_pyro.io.atomic import write_bytes_atomic  # noqa: E402
from cosmiq_pyro.io.checkpoint import read_payload, weights_sha256  # noqa: E402
from cosmiq_pyro.models.registry import PUBLISHED, PUBLISHED_DIR  # noqa: E402


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="checkpoint path or published name (e.g. ACS-WFC-VI)")
    parser.add_argument("--out", type=Path, default=None, help="write here (default: the checkpoint itself)")
    parser.add_argument("--instrument", default=None, help="the camera, for a model without a model card")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a novelty recipe key to override (e.g. novelty_false_alarm=0.03)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    entry = PUBLISHED.get(args.model)
    path = PUBLISHED_DIR / entry if isinstance(entry, str) else Path(args.model)
    meta_file = path.with_suffix(".json")
    out = path if args.out is None else args.out
    published = isinstance(entry, str) and meta_file.is_file() and out.resolve() == path.resolve()
    if published:
        meta = json.loads(meta_file.read_text())
        digest = weights_sha256(read_payload(path))
        if digest != meta["weights_sha256"]:
            raise SystemExit(f"{path}: weights digest {digest} is not the one {meta_file.name} records")
    overrides = dict(item.split("=", 1) for item in args.set)
    t0 = time.time()
    report = refit_novelty(path, out, instrument=args.instrument,
                           novelty={k: _value(v) for k, v in overrides.items()}, progress=True)
    report["seconds"] = round(time.time() - t0, 1)
    if published:
        if weights_sha256(read_payload(out)) != meta["weights_sha256"]:
            raise SystemExit(f"{out}: the weights changed")  # refit_novelty checks this too
        meta["novelty_refit"] = {k: v for k, v in report.items() if k != "path"} | {
            "by": "benchmarks/refit_novelty.py (cosmiq_pyro.inference.novelty_refit.refit_novelty)",
            "git_commit": _commit(), "why": "issue 22 item 5 (docs/novelty_cameras.md): ignored pixels left out "
            "of the fit and the calibration (as predict leaves them out since the product-trust change); the "
            "threshold at the recipe's novelty_false_alarm quantile of n_novelty_cal calibration frames; novelty "
            "frames at the real CR rate; the level component"}
        card = read_payload(out)["sections"].get("card")
        for key in ("recipe", "data", "validation"):  # a JSON that copies the model card follows it
            if card is not None and key in meta and key in card:
                meta[key] = card[key]
        write_bytes_atomic(meta_file, (json.dumps(meta, indent=1) + "\n").encode())
    print(json.dumps(report, indent=1))
    return 0


def _commit() -> str | None:
    from cosmiq_pyro.models.card import versions
    return versions()["git_commit"]


if __name__ == "__main__":
    sys.exit(main())
