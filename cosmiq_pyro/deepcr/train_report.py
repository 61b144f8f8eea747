"""What the deepCR-style trainer shows of a run: the per-epoch table and deepCR's two figures.

Used by the `cosmiq_pyro.deepcr.training.train` facade (``verbose``, ``plot_example``, ``plot_loss``).
matplotlib is imported inside the figure functions only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["epoch_table", "example_figure", "loss_plot"]


def epoch_table(epochs: list) -> str:
    """One text row per epoch record of a fit's history (``history["epochs"]``)."""
    nan = float("nan")
    rows = [f"{'epoch':>5} {'phase':>5} {'train loss':>11} {'val loss':>10} {'TPR %':>7} {'FPR %':>7} "
            f"{'lr':>9} {'s':>6}"]
    for e in epochs:
        rows.append(f"{e['epoch']:>5} {e['phase']:>5} {e['train_loss']:>11.5g} {e.get('val_loss', nan):>10.5g} "
                    f"{e.get('val_tpr', nan):>7.2f} {e.get('val_fpr', nan):>7.3f} "
                    f"{e['lr']:>9.2g} {e['seconds']:>6.1f}")
    return "\n".join(rows)


def example_figure(image, prob, mask, epoch: int, path):
    """Image (arcsinh), prediction ``prob > 0.5`` and true ``mask`` side by side, saved to ``path``
    (its directory created); returns the figure.  ``image``, ``prob``, ``mask``: (W, W) arrays."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    panels = ((np.arcsinh(image), f"epoch={epoch}: image (arcsinh)"),
              (prob > 0.5, "prediction > 0.5"), (mask > 0.5, "ground truth"))
    for ax, (data, title) in zip(axes, panels):
        ax.imshow(data, cmap="gray", origin="lower", interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return fig


def loss_plot(epochs: list, bayesian: bool, ax=None, target=None):
    """Training and validation loss per epoch record on ``ax`` (a new figure when None); saved to
    ``target`` when given (its directory created).  Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        ax = plt.figure(figsize=(6, 3.5)).add_subplot()
    x = [e["epoch"] for e in epochs]
    ax.plot(x, [e["train_loss"] for e in epochs], marker="o", label="training")
    ax.plot(x, [e["val_loss"] for e in epochs], marker="o", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean BCE per pixel)" if not bayesian else "loss (BCE + scaled KL; val: BCE)")
    ax.set_yscale("log")
    ax.legend()
    if target is not None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(target, dpi=100)
    return ax
