"""Pixel-level metrics for CR masks: calibration, detection and uncertainty quality.

Pure numpy: every function takes arrays, never models, so anything can evaluate anything.
All functions accept arrays of any one shape (``(H, W)``, ``(N, H, W)``, flat):

- ``p``: CR probability per pixel, finite, in [0, 1] (float32 is fastest);
- ``y``: truth CR mask, bool or 0/1;
- ``u``: an uncertainty per pixel (e.g. entropy or epistemic in nats), finite, larger = less sure;
- ``ignore`` (keyword, optional): bool or 0/1, True for pixels excluded from every metric
  (bad pixels, saturation, DQ flags).

Conventions
-----------
- A pixel is *flagged* as a CR when ``p > threshold`` (deepCR's ``clean`` and
  ``evaluate.roc`` rule, and ``Prediction.mask``); "prediction at 0.5" means ``p > 0.5``.
- Detection rates (TPR, FPR) are in percent, as in deepCR; ``tpr_at_fpr`` takes its FPR
  targets as fractions (``0.0005`` = 0.05 %). Calibration and risk numbers are fractions.
- Ties are never split: pixels with equal scores are on the same side of every threshold.

Every metric handles 1e8 pixels in seconds (``benchmarks/bench_metrics.py``): binned
statistics use ``bincount`` in chunks, ranking statistics sort each class's scores once.

Modules (everything public is re-exported here):

- `calibration` -- `brier`, `nll`, `ece`, `reliability_curve` (`ReliabilityCurve`);
- `detection` -- `roc_curve` (`RocCurve`), `tpr_at_fpr` (`TprAtFpr`), `roc_auc`;
- `uncertainty` -- `risk_coverage` (`RiskCoverage`), `aurc`, `e_aurc`,
  `error_vs_uncertainty` (`ErrorVsUncertainty`), `error_detection_auroc`, `binary_entropy`;
- `stars` -- `star_snr` (CCD equation), `star_core_mask`, `star_core_flags` (`StarCoreFlags`):
  pixels near the peaks of bright stars flagged as CRs;
- private helpers: `_validation` (input checks), `_reductions` (chunked sums and binned
  statistics), `_ranking` (sorted-score counting, midrank AUC), `_dilation` (disk dilation of
  predicted masks), `_harmonic` (harmonic numbers for the exact AURC).
"""
from __future__ import annotations

from .calibration import ReliabilityCurve, brier, ece, nll, reliability_curve
from .detection import RocCurve, TprAtFpr, roc_auc, roc_curve, tpr_at_fpr
from .stars import StarCoreFlags, star_core_flags, star_core_mask, star_snr
from .uncertainty import (
    ErrorVsUncertainty, RiskCoverage, aurc, binary_entropy, e_aurc, error_detection_auroc,
    error_vs_uncertainty, risk_coverage,
)

__all__ = [
    "brier", "nll", "ece", "reliability_curve", "ReliabilityCurve",
    "roc_curve", "RocCurve", "tpr_at_fpr", "TprAtFpr", "roc_auc",
    "risk_coverage", "RiskCoverage", "aurc", "e_aurc",
    "error_vs_uncertainty", "ErrorVsUncertainty", "error_detection_auroc", "binary_entropy",
    "star_snr", "star_core_mask", "star_core_flags", "StarCoreFlags",
]
