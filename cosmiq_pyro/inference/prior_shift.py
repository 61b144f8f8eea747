"""Prior-shift correction of CR logits: a model trained at a boosted CR rate, used at the real one.

A ground-based camera's real CR rate leaves too few CR pixels in a training set to learn from
(about 3,400 in 300 DECam frames of 256x256 px), so `adapt` may simulate its frames at ``k``
times the real rate (the recipe's ``cr_rate_multiplier``; DECam-VI: ``k = 50``).  A classifier
calibrated on such frames predicts the posterior at the *training* prevalence: by Bayes' rule
its logit is the log likelihood ratio plus the training prior's log-odds,

.. math:: z_{\\mathrm{train}}(x) = \\log\\frac{p(x \\mid \\mathrm{CR})}{p(x \\mid \\mathrm{not\\ CR})}
          + \\operatorname{logit} \\pi_{\\mathrm{train}},

so at the prevalence ``pi`` of the frames it is used on the right logit is (Saerens, Latinne &
Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori probabilities",
Neural Computation 14, 21, eq. 2.4 for two classes)

.. math:: z_\\pi(x) = z_{\\mathrm{train}}(x) + \\Delta, \\qquad
          \\Delta = \\operatorname{logit}\\pi - \\operatorname{logit}\\pi_{\\mathrm{train}}
          \\approx \\log\\frac{\\pi}{\\pi_{\\mathrm{train}}} = \\log\\frac{k_{\\mathrm{use}}}{k_{\\mathrm{train}}}.

The approximation holds for rare CR pixels with few overlapping hits (the pixel prevalence
scales with the rate); its error is ``log((1 - pi)/(1 - pi_train))``, below ``pi_train``:
0.01 for DECam at ``k = 50`` (``pi_train`` about 0.0096 on 256x256 frames), against
``|Delta| = 3.9``.

The shift is added after the temperature (which was fitted on validation frames at the training
rate), to every posterior draw's logit, ``z_t -> z_t / tau + Delta``; in the moment pass to the
logit mean (the variance is unchanged).  It travels with the model as the checkpoint section
``"prior_shift"`` (`SECTION`, checked in `io.checkpoint.SECTION_CHECKS`); `predict` and the moment
pass read it with `logit_shift`; `adapt` sets it from its recipe and `write_prior_shift` gives
it to a trained checkpoint.  A model without the section has ``Delta = 0``.  To predict at
another rate (a long exposure with more CRs per pixel), set the section with
`prior_shift_state` and ``use_rate_multiplier``.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..io.checkpoint import read_payload, replace_sections
from ..utils.checks import check_float

__all__ = ["SECTION", "prior_shift_state", "logit_shift", "with_prior_shift", "write_prior_shift"]

#: The checkpoint section (and ``FitResult.sections`` key) holding the shift.
SECTION = "prior_shift"


def prior_shift_state(train_rate_multiplier: float, use_rate_multiplier: float = 1.0) -> dict:
    """The ``"prior_shift"`` section for a model trained at ``train_rate_multiplier`` times a
    camera's real CR rate and used at ``use_rate_multiplier`` times it.

    Returns ``{"logit_shift": log(use / train), "train_cr_rate_multiplier": train,
    "use_cr_rate_multiplier": use}`` (plain floats).

    Raises
    ------
    ValueError
        A multiplier that is not a finite number > 0.
    """
    train = check_float(train_rate_multiplier, "train_rate_multiplier", positive=True)
    use = check_float(use_rate_multiplier, "use_rate_multiplier", positive=True)
    return {"logit_shift": math.log(use / train), "train_cr_rate_multiplier": train,
            "use_cr_rate_multiplier": use}


def logit_shift(model) -> float:
    """The logit shift ``Delta`` a model carries (its ``"prior_shift"`` section), else 0.

    ``model``: a `FitResult` (or anything with ``.sections``); a bare net has none.
    """
    sections = getattr(model, "sections", None) or {}
    state = sections.get(SECTION)
    if state is None:
        return 0.0
    if not isinstance(state, dict):
        raise ValueError(f"the model's {SECTION!r} section must be a dict, got {type(state).__name__}")
    return check_float(state.get("logit_shift"), f"the model's {SECTION!r} logit_shift")


def with_prior_shift(result, train_rate_multiplier: float, use_rate_multiplier: float = 1.0):
    """Set ``result``'s ``"prior_shift"`` section (in place; removed when the two rates are equal)
    and return ``result``.  ``save`` / `io.checkpoint.update_sections` write it."""
    state = prior_shift_state(train_rate_multiplier, use_rate_multiplier)
    if state["logit_shift"] == 0.0:
        result.sections.pop(SECTION, None)
    else:
        result.sections[SECTION] = state
    return result


def write_prior_shift(checkpoint, train_rate_multiplier: float | None = None, use_rate_multiplier: float = 1.0,
                      out=None) -> dict:
    """Give a trained checkpoint its ``"prior_shift"`` section (and its model card's record),
    weights unchanged (`io.checkpoint.replace_sections`).

    Parameters
    ----------
    checkpoint : str or os.PathLike
        A cosmiq_pyro checkpoint (``.pth``).
    train_rate_multiplier : float, optional
        The training frames' CR rate over the camera's real one; default: the model card's
        ``recipe.cr_rate_multiplier`` (a model made by `adapt` on simulated frames).
    use_rate_multiplier : float
        The rate to predict at, in the same units (1: the real rate).
    out : str or os.PathLike, optional
        Where to write (default: ``checkpoint`` itself, replaced atomically).

    Returns
    -------
    dict
        ``path``, the section's values and ``weights_sha256`` (the same before and after).

    Raises
    ------
    ValueError
        No multiplier given and none on the card, or a bad multiplier.
    """
    checkpoint = Path(checkpoint)
    card = read_payload(checkpoint)["sections"].get("card")
    if train_rate_multiplier is None:
        train_rate_multiplier = ((card or {}).get("recipe") or {}).get("cr_rate_multiplier")
        if train_rate_multiplier is None:
            raise ValueError(f"train_rate_multiplier: {str(checkpoint)!r} has no model card recipe with a "
                             "cr_rate_multiplier; give the training frames' CR rate multiplier")
    state = prior_shift_state(train_rate_multiplier, use_rate_multiplier)
    sections = {SECTION: state}
    if card is not None:
        sections["card"] = {**card, "validation": {**card.get("validation", {}),
                                                   "prior_logit_shift": state["logit_shift"]}}
    digest = replace_sections(checkpoint, sections, out)
    return {"path": str(checkpoint if out is None else out), **state, "weights_sha256": digest}
