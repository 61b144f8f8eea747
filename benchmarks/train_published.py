"""Train the published Bayesian model ``ACS-WFC-VI`` (issue 13), resumably, and publish it.

A thin call of `cosmiq_pyro.adapt` with the ACS-WFC-VI recipe (`cosmiq_pyro.inference.adaptation.
ACS_WFC_VI`, README "The shipped model"), unchanged since the shipped model was trained:

* network: deepCR's ACS-WFC mask U-Net (hidden 32, batch norm), as `UNet2SigmoidVI`;
* prior: ``N(w_deepCR, 0.1^2)`` on every conv weight and bias (centred on the starting model);
* posterior: mean-field Normal, means starting at deepCR's weights, sigmas at ``init_scale``,
  the scales in their own Adam group (``scale_lr``);
* batch norm frozen at deepCR's running statistics (``phase0_epochs=0``: every epoch is deepCR's
  phase 1, at ``lr / 2.5``; both learning rates are given before that factor);
* data: simulated 256x256 frames, fields EX/GC/GAL x filters F435W/F606W/F814W, exposure times
  100-1200 s, AstroDrizzle driz_cr labels (``label_rule="drizcr"``), detector defects on,
  random flips/rotations; a separate simulated validation set;
* objective: the exact negative ELBO per pixel (``kl_beta = 1 / pixels per frame``);
* calibration: the logit temperature fitted on the validation set after every chunk; the
  novelty model fitted on 192 + 192 further simulated frames (inside the checkpoint).

Every call trains at most ``--chunk-epochs`` more epochs (resuming from ``WORK/run.pth``, or,
when ``WORK`` is new, from the published checkpoint if it was made with this recipe), then
writes ``OUT/ACS-WFC-VI.pth`` (the best validation epoch, with its temperature, novelty model
and model card), ``OUT/ACS-WFC-VI.json`` (this recipe, seeds, epochs done, wall time, versions)
and ``OUT/ACS-WFC-VI.log`` (one line per epoch), and the posterior width per layer over training
to ``docs/acs_wfc_vi_sigma.png`` (not for ``--smoke``).  Run it again to continue::

    python benchmarks/train_published.py --chunk-epochs 2            # CPU, resumable chunks
    python benchmarks/train_published.py --device cuda --chunk-epochs 100

A changed recipe with an existing ``WORK/run.pth`` is refused (start a new ``--work``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmiq_pyro.data.camera_sets import resolve_camera  # noqa: E402
from cosmiq_pyro.inference.adaptation import ACS_WFC_VI, adapt, resolve_recipe  # noqa: E402
from cosmiq_pyro.io.checkpoint import WEIGHTS_SHA256_OF  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402

NAME = ACS_WFC_VI["name"]
#: ``--smoke``: a tiny run of the same recipe, to check the script.
SMOKE = {"n_train": 8, "n_val": 2, "epochs": 1, "batch_size": 4, "n_novelty": 8}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "build" / NAME, help="resumable run directory")
    p.add_argument("--out", type=Path, default=ROOT / "cosmiq_pyro" / "models" / "published",
                   help="where the published checkpoint, config and log go")
    p.add_argument("--chunk-epochs", type=int, default=2, help="at most this many epochs in this call")
    p.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads on the CPU")
    p.add_argument("--smoke", action="store_true", help="a tiny run (8 train / 2 val frames, 1 epoch) "
                   "into --work and --out, to check the script")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.chunk_epochs < 1:
        raise SystemExit("--chunk-epochs must be >= 1")
    torch.set_num_threads(args.threads)  # a script: the process is ours
    overrides = dict(SMOKE) if args.smoke else {}
    published, log_file = args.out / f"{NAME}.pth", args.work / "train.log"
    continue_published_run(args, resolve_recipe(resolve_camera("ACS-WFC"), "ACS-WFC", published, overrides))

    def log_epoch(record, model, guide):
        sigma = record["sigma_median"]
        weights = [v for k, v in sigma.items() if k.endswith("weight")]
        line = (f"epoch {record['epoch']:3d}  train_loss {record['train_loss']:.5f}  val_loss {record['val_loss']:.5f}  "
                f"val_tpr {record['val_tpr']:.2f}%  val_fpr {record['val_fpr']:.4f}%  lr {record['lr']:.2e}  "
                f"median sigma (weights) {min(weights):.3g}..{max(weights):.3g}  {record['seconds']:.0f} s")
        with log_file.open("a") as fh:
            fh.write(line + "\n")
        print(line, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    result = adapt("ACS-WFC", "ACS-WFC", published, chunk_epochs=args.chunk_epochs, recipe=overrides,
                   work=args.work, device=args.device, progress=False, on_epoch=log_epoch)
    if result.interrupted:
        print(f"{NAME}: interrupted; {args.work / 'run.pth'} keeps the best epoch", file=sys.stderr)
        return 130
    card = result.card
    chunk = card["training"]["chunks"][-1]
    with log_file.open("a") as fh:
        fh.write(f"chunk: epochs {chunk['epochs'][0]}-{chunk['epochs'][1]} in {chunk['seconds']:.0f} s on "
                 f"{args.device or 'default device'} ({args.threads} threads); best epoch "
                 f"{card['training']['best_epoch']}, temperature {result.temperature:.4f}\n")
    publish(args, card, log_file)
    return 0


def continue_published_run(args, recipe: dict) -> None:
    """A new ``--work`` continues the published run when it was made with this recipe.  A published
    checkpoint from before `adapt` has no card: its recipe is ``OUT/ACS-WFC-VI.json``'s (the keys
    it lacks were implicit then, with the values `ACS_WFC_VI` now states)."""
    published, meta_file = args.out / f"{NAME}.pth", args.out / f"{NAME}.json"
    if args.smoke or (args.work / "run.pth").exists() or not published.exists() or not meta_file.exists():
        return
    if load_model(published).card is not None:
        return  # adapt continues a carded checkpoint itself
    saved = json.loads(meta_file.read_text())["recipe"]
    if any(recipe.get(k) != v for k, v in saved.items()):
        return
    args.work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(published, args.work / "run.pth")
    shutil.copyfile(args.out / f"{NAME}.log", args.work / "train.log")
    (args.work / "adapt.json").write_text(json.dumps({"recipe": recipe, "chunks": []}, indent=1))
    print(f"{NAME}: continuing the published run from {published}")


def publish(args, card: dict, log_file: Path) -> None:
    """The JSON summary (recipe, seeds, epochs, wall time, versions) and the log beside the
    checkpoint `adapt` wrote, and the posterior-width figure."""
    meta_file = args.out / f"{NAME}.json"
    previous = json.loads(meta_file.read_text()) if meta_file.exists() and not args.smoke else {}
    chunk = card["training"]["chunks"][-1]
    meta = {
        "recipe": card["recipe"],
        "epochs_done": card["training"]["epochs_done"],
        "best_epoch": card["training"]["best_epoch"],
        "temperature": card["validation"]["temperature"],
        "train_wall_seconds": round(previous.get("train_wall_seconds", 0) + chunk["seconds"]),
        "script": "benchmarks/train_published.py (cosmiq_pyro.adapt)",
        **card["versions"],
        "machine": card["machine"],
        "weights_sha256": weights_sha256(args.out / f"{NAME}.pth"),
        "weights_sha256_of": WEIGHTS_SHA256_OF,
    }
    shutil.copyfile(log_file, args.out / f"{NAME}.log")
    meta_file.write_text(json.dumps(meta, indent=1) + "\n")
    history = load_model(args.out / f"{NAME}.pth").history
    if not args.smoke:
        sigma_figure(history, ROOT / "docs" / "acs_wfc_vi_sigma.png")
    size_mb = (args.out / f"{NAME}.pth").stat().st_size / 1e6
    print(f"published {args.out / (NAME + '.pth')} ({size_mb:.2f} MB), epochs {meta['epochs_done']}, "
          f"best {meta['best_epoch']}, T = {meta['temperature']:.4f}")


def weights_sha256(path: Path) -> str:
    """The digest of the weights alone (net and guide states), as ``weights_sha256_of`` says."""
    from cosmiq_pyro.io.checkpoint import read_payload, weights_sha256 as digest  # one place for the digest
    return digest(read_payload(path))


def sigma_figure(history: dict, path: Path) -> None:
    """The median posterior sigma of every weight layer after every epoch (epoch 0: the start)."""
    import matplotlib

    matplotlib.use("Agg")  # a script: the process is ours
    import matplotlib.pyplot as plt

    from cosmiq_pyro.evaluation.plots import plot_sigma_history

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    plot_sigma_history(history, ax=ax)
    ax.set_title(f"{NAME}: median posterior sigma per layer (prior scale {ACS_WFC_VI['prior_scale']})")
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
