"""Train the published Bayesian model ``ACS-WFC-VI`` (issue 13), resumably, and publish it.

Recipe (README "The shipped model"):

* network: deepCR's ACS-WFC mask U-Net (hidden 32, batch norm), as `UNet2SigmoidVI`;
* prior: ``N(w_deepCR, 0.1^2)`` on every conv weight and bias (`UNet2SigmoidVI.from_deepcr`);
* posterior: mean-field Normal, means starting at deepCR's weights, sigmas at ``init_scale``,
  the scales in their own Adam group (``scale_lr``);
* batch norm frozen at deepCR's running statistics (``phase0_epochs=0``: every epoch is deepCR's
  phase 1, at ``lr / 2.5``; both learning rates below are given before that factor);
* data: simulated 256x256 frames, fields EX/GC/GAL x filters F435W/F606W/F814W, exposure times
  100-1200 s, AstroDrizzle driz_cr labels (``label_rule="drizcr"``), detector defects on,
  random flips/rotations; a separate simulated validation set;
* objective: the exact negative ELBO per pixel (``kl_beta = 1 / pixels per frame``);
* calibration: the logit temperature fitted on the validation set after every chunk.

Every call trains at most ``--chunk-epochs`` more epochs (resuming from ``WORK/run.pth``, or,
when ``WORK`` is new, from the published checkpoint if it was made with this recipe), then
writes ``OUT/ACS-WFC-VI.pth`` (the best validation epoch, with its temperature),
``OUT/ACS-WFC-VI.json`` (this recipe, seeds, epochs done, wall time, versions) and
``OUT/ACS-WFC-VI.log`` (one line per epoch), and the posterior width per layer over training to
``docs/acs_wfc_vi_sigma.png`` (not for ``--smoke``).  Run it again to continue::

    python benchmarks/train_published.py --chunk-epochs 2            # CPU, resumable chunks
    python benchmarks/train_published.py --device cuda --chunk-epochs 100

A changed recipe with an existing ``WORK/run.pth`` is refused (start a new ``--work``).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmiq_pyro._version import __version__  # noqa: E402
from cosmiq_pyro.data.datasets import SimulatedDataset  # noqa: E402
from cosmiq_pyro.inference.fit import fit_svi  # noqa: E402
from cosmiq_pyro.models.bayesian import UNet2SigmoidVI  # noqa: E402
from cosmiq_pyro.models.registry import load_model  # noqa: E402

NAME = "ACS-WFC-VI"
SIZE = 256
RECIPE = {
    "name": NAME,
    "base": "ACS-WFC",            # deepCR's published mask weights (prior centre, initial means)
    "prior_scale": 0.1,           # models.bayesian.PRETRAINED_PRIOR_SCALE
    "size": SIZE,
    "fields": ["EX", "GC", "GAL"],
    "filters": ["F435W", "F606W", "F814W"],
    "exptime_s": [100, 1200],
    "label_rule": "drizcr",
    "n_train": 512,
    "n_val": 32,
    "train_seed": 13,             # hashed frame seeds (< 2**32), disjoint from held-out sets
    "val_seed": 14,
    "fit_seed": 0,
    "epochs": 6,
    "batch_size": 8,
    "lr": 2.5e-3,                 # means; phase 1 runs at lr / 2.5 = 1e-3
    "scale_lr": 0.125,            # scales; phase 1 runs at 0.125 / 2.5 = 0.05 (fit.SCALE_LR)
    "phase0_epochs": 0,           # batch norm frozen at deepCR's statistics throughout
    "init_scale": 1e-2,
    "kl_beta": 1.0 / SIZE ** 2,   # exact negative ELBO per pixel
    "val_samples": 4,
    "calibration_draws": 8,
}


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


def recipe_for(args) -> dict:
    recipe = dict(RECIPE)
    if args.smoke:
        recipe.update(n_train=8, n_val=2, epochs=1, batch_size=4)
    return recipe


def datasets(recipe: dict):
    common = dict(size=recipe["size"], fields=recipe["fields"], filters=recipe["filters"],
                  exptime_s=tuple(recipe["exptime_s"]), label_rule=recipe["label_rule"])
    train = SimulatedDataset(recipe["n_train"], seed=recipe["train_seed"], augment=True, **common)
    val = SimulatedDataset(recipe["n_val"], seed=recipe["val_seed"], **common)
    return train, val


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.chunk_epochs < 1:
        raise SystemExit("--chunk-epochs must be >= 1")
    torch.set_num_threads(args.threads)  # a script: the process is ours
    recipe = recipe_for(args)
    args.work.mkdir(parents=True, exist_ok=True)
    recipe_file, checkpoint, log_file = args.work / "recipe.json", args.work / "run.pth", args.work / "train.log"
    published = args.out / f"{NAME}.pth"
    if not checkpoint.exists() and published.exists() and not args.smoke and \
            json.loads((args.out / f"{NAME}.json").read_text())["recipe"] == recipe:
        # continue the published run (it is the run's checkpoint, with its log) in a fresh --work
        shutil.copyfile(published, checkpoint)
        shutil.copyfile(args.out / f"{NAME}.log", log_file)
        recipe_file.write_text(json.dumps(recipe, indent=1))
        print(f"{NAME}: continuing the published run from {published}")
    if checkpoint.exists():
        saved = json.loads(recipe_file.read_text())
        if saved != recipe:
            diff = sorted(k for k in set(saved) | set(recipe) if saved.get(k) != recipe.get(k))
            raise SystemExit(f"{checkpoint} was trained with another recipe (differs in {diff}); use a new --work")
        done = len(load_model(checkpoint).history.get("epochs", []))
    else:
        recipe_file.write_text(json.dumps(recipe, indent=1))
        done = 0
    if done >= recipe["epochs"]:
        print(f"{NAME}: all {recipe['epochs']} epochs done; publishing")
    target = min(recipe["epochs"], done + args.chunk_epochs)
    train, val = datasets(recipe)
    model = UNet2SigmoidVI.from_deepcr(recipe["base"], prior_scale=recipe["prior_scale"])

    def log_epoch(record, model, guide):
        sigma = record["sigma_median"]
        weights = [v for k, v in sigma.items() if k.endswith("weight")]
        line = (f"epoch {record['epoch']:3d}  train_loss {record['train_loss']:.5f}  val_loss {record['val_loss']:.5f}  "
                f"val_tpr {record['val_tpr']:.2f}%  val_fpr {record['val_fpr']:.4f}%  lr {record['lr']:.2e}  "
                f"median sigma (weights) {min(weights):.3g}..{max(weights):.3g}  {record['seconds']:.0f} s")
        with log_file.open("a") as fh:
            fh.write(line + "\n")
        print(line, flush=True)

    started = time.time()
    result = fit_svi(model, train, val, epochs=target, batch_size=recipe["batch_size"], lr=recipe["lr"],
                     scale_lr=recipe["scale_lr"], kl_beta=recipe["kl_beta"], init_scale=recipe["init_scale"],
                     num_particles=1,  # as trained (fit_svi's default became 2 after the shipped model)
                     phase0_epochs=recipe["phase0_epochs"], val_samples=recipe["val_samples"],
                     seed=recipe["fit_seed"], checkpoint=checkpoint, resume=True, calibrate=True,
                     device=args.device, progress=False, on_epoch=log_epoch)
    wall = time.time() - started
    with log_file.open("a") as fh:
        fh.write(f"chunk: epochs {done + 1}-{target} in {wall:.0f} s on {args.device or 'default device'} "
                 f"({args.threads} threads); best epoch {result.history.get('best_epoch')}, "
                 f"temperature {result.temperature:.4f}\n")
    publish(args, recipe, result, checkpoint, log_file, wall)
    return 0


def publish(args, recipe, result, checkpoint, log_file, wall) -> None:
    """Copy the run's checkpoint (best epoch, temperature) into the package with its recipe and log."""
    args.out.mkdir(parents=True, exist_ok=True)
    meta_file = args.out / f"{NAME}.json"
    previous = json.loads(meta_file.read_text()) if meta_file.exists() and not args.smoke else {}
    history = result.history
    meta = {
        "recipe": recipe,
        "epochs_done": len(history["epochs"]),
        "best_epoch": history.get("best_epoch"),
        "temperature": result.temperature,
        "train_wall_seconds": round(previous.get("train_wall_seconds", 0) + wall),
        "script": "benchmarks/train_published.py",
        "cosmiq_pyro": __version__,
        "git_commit": _git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    shutil.copyfile(checkpoint, args.out / f"{NAME}.pth")
    shutil.copyfile(log_file, args.out / f"{NAME}.log")
    meta_file.write_text(json.dumps(meta, indent=1) + "\n")
    if not args.smoke:
        sigma_figure(history, ROOT / "docs" / "acs_wfc_vi_sigma.png")
    size_mb = (args.out / f"{NAME}.pth").stat().st_size / 1e6
    print(f"published {args.out / (NAME + '.pth')} ({size_mb:.2f} MB), epochs {meta['epochs_done']}, "
          f"best {meta['best_epoch']}, T = {result.temperature:.4f}")


def sigma_figure(history: dict, path: Path) -> None:
    """The median posterior sigma of every weight layer after every epoch (epoch 0: the start)."""
    import matplotlib

    matplotlib.use("Agg")  # a script: the process is ours
    import matplotlib.pyplot as plt

    from cosmiq_pyro.evaluation.plots import plot_sigma_history

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    plot_sigma_history(history, ax=ax)
    ax.set_title(f"{NAME}: median posterior sigma per layer (prior scale {RECIPE['prior_scale']})")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
