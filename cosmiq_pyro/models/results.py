"""`FitResult`: a fitted model bundle (what the fit functions return and `load_model` reads)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from .card import card_lines

__all__ = ["FitResult"]


@dataclass
class FitResult:
    """A fitted model: what `fit_svi` / `fit_deterministic` return and `load_model` reads back.

    Attributes
    ----------
    model : UNet2Sigmoid or UNet2SigmoidVI
    guide : pyro.infer.autoguide.AutoNormal or None
        The variational posterior (None for the deterministic twin).
    history : dict
        ``"loss"``: per-step training loss; ``"epochs"``: one dict per epoch with
        ``train_loss``, ``val_loss``, ``val_tpr``, ``val_fpr`` (threshold 0.5, in %),
        ``lr``, ``seconds``; ``"best_epoch"`` when validation data were given.
    interrupted : bool
        True when training stopped on KeyboardInterrupt (the result holds the last good state).
    weights_file : pathlib.Path or None
        The file the weights were read from (`load_model`), None for a model fitted in memory.
    temperature : float
        Post-hoc temperature ``tau`` of the logits (`cosmiq_pyro.inference.temperature`): `predict`
        uses ``sigmoid(logit / tau)`` for every draw.  1 = uncalibrated; the fit functions set it on
        the validation split, checkpoints store it.
    novelty : NoveltyModel, dict or None
        The model's fitted `cosmiq_pyro.inference.novelty.NoveltyModel` or its state dict (what
        a checkpoint stores, as its ``"novelty"`` section); `predict` scores every image with it.
        None when it has none.
    card : dict or None
        The model card (plain Python, the checkpoint's ``"card"`` section): how the model was made
        -- recipe, seeds, data, versions, validation figures (`cosmiq_pyro.adapt` writes one;
        `summary` and ``print(result)`` show it).  None when the checkpoint has none.
    input_transform : dict or None
        What an image goes through before the net (`cosmiq_pyro.data.input_transform`, the
        ``"input_transform"`` section; e.g. ``{"kind": "standardise"}`` for deepCR's ``WFC3-UVIS``
        and models adapted from it); `predict` applies it.  None: the image in electrons as it is.
    sections : dict
        The checkpoint's other named sections (``name -> tensors and plain Python``), read by
        `load_model` and written back by `save` (`cosmiq_pyro.io.checkpoint`).
    """

    model: nn.Module
    guide: nn.Module | None = None
    history: dict = field(default_factory=dict)
    interrupted: bool = False
    weights_file: Path | None = None
    temperature: float = 1.0
    novelty: dict | None = None
    card: dict | None = None
    input_transform: dict | None = None
    sections: dict = field(default_factory=dict)

    @property
    def bayesian(self) -> bool:
        return self.guide is not None

    def summary(self) -> str:
        """A few lines on the model: kind, file, temperature, novelty model and its card."""
        net = self.model
        kind = type(net).__name__ + (" (Bayesian, mean-field posterior)" if self.bayesian else "")
        lines = [f"{kind}, hidden={getattr(net, 'hidden', '?')}, norm={getattr(net, 'norm', '?')!r}"
                 + (f", from {self.weights_file}" if self.weights_file is not None else ""),
                 f"temperature {self.temperature:.4g}"
                 + ("" if "prior_shift" not in self.sections
                    else f"; prior shift {self.sections['prior_shift']['logit_shift']:+.4g} (logit)")
                 + f"; novelty model: {'yes' if self.novelty is not None else 'no'}"
                 + ("" if self.input_transform is None else f"; input transform: {self.input_transform['kind']}")]
        lines += card_lines(self.card) if self.card else ["no model card"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
