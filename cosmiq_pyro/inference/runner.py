"""The owner of a training run's state outside the data loop: resume, history, best weights,
the checkpoint file.

`fit.fit_deterministic` / `fit.fit_svi` build one `TrainingRun` and their loop calls it back:

* `TrainingRun.resume_into(model)` -- with ``resume=True`` and an existing checkpoint, load it
  into ``model`` (architecture checked) and continue after its last recorded epoch;
* `TrainingRun.begin(model, guide)` -- the history to extend (the checkpoint's, or empty) and
  the best validation loss so far;
* `TrainingRun.end_epoch(...)` -- record the epoch; when it is the best so far (lowest
  validation loss over *all* epochs, old and new; every epoch without validation data), keep a
  copy of the weights and write the checkpoint (from epoch ``save_after`` on);
* `TrainingRun.finish(...)` -- put the best weights back in the model and write the checkpoint
  once more with the whole history (so epochs that did not improve are recorded too).

The checkpoint therefore always holds the best weights seen and every epoch run; a resumed run
that never beats the old best keeps the old weights and still records its epochs.  Files are
written atomically (`models.registry.save`).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

from ..models.registry import load_model, save
from ..models.results import FitResult
from ..utils.checks import check_int
from ..utils.torchtools import eval_mode

__all__ = ["TrainingRun"]


class TrainingRun:
    """Resume, history and checkpoint writing of one training run.

    Parameters
    ----------
    checkpoint : str or Path, optional
        The run's checkpoint file; None keeps everything in memory.
    resume : bool
        Continue from ``checkpoint`` when it exists (its weights, guide and history).
    save_after : int
        Write improvements only from this (1-based) epoch on; the final write always happens.
    """

    def __init__(self, checkpoint=None, *, resume: bool = False, save_after: int = 0):
        if resume and checkpoint is None:
            raise ValueError("resume=True needs a checkpoint path to resume from")
        save_after = check_int(save_after, "save_after", minimum=0)
        self.path = None if checkpoint is None else Path(checkpoint)
        self.resume = bool(resume)
        self.save_after = save_after
        self.previous: FitResult | None = None
        self._best_loss = math.inf
        self._best_state = None

    @property
    def start_epoch(self) -> int:
        """Epochs already recorded (0 for a fresh run)."""
        return 0 if self.previous is None else len(self.previous.history.get("epochs", []))

    def resume_into(self, model) -> FitResult | None:
        """Load the checkpoint into ``model`` when resuming from an existing file; else None.

        Raises a ValueError naming every architecture setting that differs.
        """
        if self.resume and self.path.exists():
            self.previous = load_model(self.path, model=model)
        return self.previous

    def begin(self, model, guide) -> dict:
        """The history to extend; the best weights so far are the loaded checkpoint's."""
        if self.previous is None:
            return {"loss": [], "epochs": []}
        old = self.previous.history
        history = {"loss": list(old.get("loss", [])), "epochs": [dict(e) for e in old.get("epochs", [])]}
        if "init" in old:  # statistics of the initial state (e.g. fit_svi's posterior widths)
            history["init"] = old["init"]
        best = old.get("best_epoch")
        if best is not None:
            history["best_epoch"] = best
            self._best_loss = history["epochs"][best - 1].get("val_loss", math.inf)
        self._best_state = _snapshot(model, guide)
        return history

    def end_epoch(self, model, guide, history: dict, record: dict, has_val: bool) -> bool:
        """Record ``record`` (one epoch); keep and write the weights if they are the best so far.

        Returns whether the epoch improved on the best.
        """
        history["epochs"].append(record)
        improved = not has_val or record["val_loss"] < self._best_loss
        if improved:
            if has_val:
                self._best_loss = record["val_loss"]
                history["best_epoch"] = record["epoch"]
            self._best_state = _snapshot(model, guide)
            if self.path is not None and record["epoch"] >= self.save_after:
                with eval_mode(model):
                    save(self.path, model, guide, history)
        return improved

    def finish(self, model, guide, history: dict, interrupted: bool = False) -> FitResult:
        """The best weights back in ``model`` (eval mode), the checkpoint written with the whole
        history (unless no epoch was ever completed), and the `FitResult`."""
        if self._best_state is not None:
            _restore(model, guide, self._best_state)
        model.eval()
        result = FitResult(model=model, guide=guide, history=history, interrupted=interrupted,
                           weights_file=self.path)
        if self.path is not None and history.get("epochs"):
            save(self.path, result)
        return result


def _snapshot(model, guide) -> tuple:
    return (copy.deepcopy(model.state_dict()), None if guide is None else copy.deepcopy(guide.state_dict()))


def _restore(model, guide, state) -> None:
    model.load_state_dict(state[0])
    if guide is not None:
        guide.load_state_dict(state[1])
