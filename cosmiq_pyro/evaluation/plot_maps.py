"""An image beside a `Prediction`'s maps: probability, entropy, epistemic term and, with a
truth mask, the errors at a threshold (`plot_maps`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from astropy.visualization import ImageNormalize, ZScaleInterval
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

__all__ = ["plot_maps"]

_ERROR_COLOURS = {  # class code: (colour, legend name)
    0: ("#1a1a1a", "true negative"),
    1: ("#f2f2f2", "true positive"),
    2: ("#e41a1c", "false positive"),
    3: ("#1e90ff", "false negative"),
    4: ("#8c8c8c", "ignored"),
}


def _as_map(a, name: str, shape) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) map, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape} but image has shape {shape}")
    return arr


def plot_maps(image, prediction, truth=None, ignore=None, *, axes=None, threshold: float = 0.5,
              panel_size: float = 4.0):
    """Image, CR probability, entropy and epistemic maps side by side (+ errors with truth).

    Parameters
    ----------
    image : array_like, (H, W)
        Image in electrons, shown with a z-scale stretch (astropy ``ZScaleInterval``).
    prediction : Prediction-like
        Any object with float (H, W) maps ``prob``, ``entropy`` (nats), ``epistemic`` (nats)
        and the int ``T`` (posterior draws), e.g. `cosmiq_pyro.inference.predictive.Prediction`.
    truth : array_like, (H, W), optional
        CR mask; adds a panel of the prediction ``prob > threshold`` against it: false
        positives red, false negatives blue, true positives white, true negatives black.
    ignore : array_like, (H, W), optional
        Pixels drawn grey in every panel.
    axes : sequence of matplotlib.axes.Axes, optional
        One per panel (4, or 5 with ``truth``); default: a new one-row figure.
    threshold : float
        Decision threshold of the error panel.
    panel_size : float
        Panel width in inches for a new figure.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        The panel axes; ``axes[0].figure`` is the figure.
    """
    for attr in ("prob", "entropy", "epistemic", "T"):
        if not hasattr(prediction, attr):
            raise TypeError(f"prediction must have attributes prob, entropy, epistemic and T "
                            f"(a Prediction); it has no {attr!r}")
    img = _as_map(image, "image", None).astype(np.float64)
    shape = img.shape
    prob = _as_map(prediction.prob, "prediction.prob", shape)
    entropy = _as_map(prediction.entropy, "prediction.entropy", shape)
    epistemic = _as_map(prediction.epistemic, "prediction.epistemic", shape)
    bad = np.zeros(shape, bool) if ignore is None else _as_map(ignore, "ignore", shape).astype(bool)
    n_panels = 4 if truth is None else 5
    if axes is None:
        fig, axes = plt.subplots(1, n_panels, figsize=(panel_size * n_panels, panel_size * 0.95),
                                 layout="constrained", sharex=True, sharey=True)
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size < n_panels:
        raise ValueError(f"axes must hold at least {n_panels} axes for these panels, got {axes.size}")
    fig = axes[0].figure

    def show(ax, data, title, cbar_label, cmap, cbar_format=None, **norm_kw):
        cm = plt.get_cmap(cmap).with_extremes(bad="#8c8c8c")
        im = ax.imshow(np.ma.masked_array(data, bad), origin="lower", cmap=cm,
                       interpolation="nearest", **norm_kw)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=cbar_label, format=cbar_format)
        ax.set_title(title)

    good = img[~bad] if (~bad).any() else img.ravel()
    vmin, vmax = ZScaleInterval().get_limits(good)
    show(axes[0], img, "Image (z-scale)", "electrons", "gray",
         norm=ImageNormalize(vmin=vmin, vmax=vmax))
    show(axes[1], prob, "CR probability", "P(CR)", "viridis", vmin=0, vmax=1)
    show(axes[2], entropy, "Predictive entropy", "nats", "magma", vmin=0, vmax=np.log(2))
    epi_top = float(np.max(epistemic[~bad])) if (~bad).any() else 0.0
    # tick labels carry their own exponent: a colour bar's offset text ("1e-3") would sit on the title
    how = f"T={prediction.T}" if prediction.T is not None else getattr(prediction, "method", "no draws")
    show(axes[3], epistemic, f"Epistemic (mutual information), {how}", "nats",
         "magma", cbar_format="%.2g", vmin=0, vmax=epi_top if epi_top > 0 else np.log(2))
    if truth is not None:
        t = _as_map(truth, "truth", shape).astype(bool)
        flagged = np.asarray(prob) > threshold
        code = np.where(flagged, np.where(t, 1, 2), np.where(t, 3, 0))
        code[bad] = 4
        cmap = ListedColormap([_ERROR_COLOURS[k][0] for k in range(5)])
        axes[4].imshow(code, origin="lower", cmap=cmap, vmin=-0.5, vmax=4.5,
                       interpolation="nearest")
        handles = [Patch(facecolor=c, edgecolor="0.4", label=f"{name} ({int((code == k).sum())})")
                   for k, (c, name) in _ERROR_COLOURS.items() if k != 4 or bad.any()]
        axes[4].legend(handles=handles, fontsize="small", loc="upper center",
                       bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        axes[4].set_title(f"Errors at p > {threshold:g}")
    for ax in axes[:n_panels]:
        ax.set_xlabel("x (pixel)")
    axes[0].set_ylabel("y (pixel)")
    return axes[:n_panels]
