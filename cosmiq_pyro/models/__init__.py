"""The models, as composable parts (TyXe-style):

* `unet` -- the plain deepCR-style `UNet2Sigmoid` (torch only);
* `priors` -- weight priors applied to a net's convolutions (`IIDNormalPrior`,
  `KaimingNormalPrior`, `CentredNormalPrior`);
* `likelihood` -- `BernoulliMaskLikelihood` (ignore mask, per-valid-pixel scaling);
* `bayesian` -- `UNet2SigmoidVI` = plain net + prior + likelihood (a Pyro model), posterior draws;
* `guides` -- the mean-field `AutoNormal` guide and the only code that reads its parameters;
* `local` -- module-local Pyro parameters without global settings;
* `fused` -- batch-norm-folded, grouped inference passes;
* `results` -- `FitResult`; `registry` -- `load_model`, `save`, `resolve`, published models.
"""

__all__ = []
