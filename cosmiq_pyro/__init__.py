"""cosmiq_pyro: cosmic-ray detection with calibrated uncertainty for HST ACS/WFC-style CCD images.

A deepCR-style U-Net (`UNet2Sigmoid`) and its variational Bayesian twin written in Pyro
(`UNet2SigmoidVI`), trained with `fit_deterministic` / `fit_svi`, sampled with `predict`
into per-pixel probability, entropy, aleatoric and epistemic maps.

Names are imported lazily so that ``import cosmiq_pyro.data.simulate`` or
``import cosmiq_pyro.evaluation.metrics`` does not pay for importing torch and Pyro.
"""
from importlib import import_module

from ._version import __version__

# public name -> submodule that defines it.  No submodule shares a public name
# (`predictive`, not `predict`; `study`, not `compare`): importing a submodule binds
# its name on the package and would shadow the function.
_EXPORTS = {
    "UNet2Sigmoid": "models.unet",
    "UNet2SigmoidVI": "models.bayesian",
    "IIDNormalPrior": "models.priors",
    "KaimingNormalPrior": "models.priors",
    "CentredNormalPrior": "models.priors",
    "fit_svi": "inference.fit",
    "fit_deterministic": "inference.fit",
    "FitResult": "models.results",
    "predict": "inference.predictive",
    "Prediction": "inference.predictive",
    "save": "models.registry",
    "load": "models.registry",
    "load_model": "models.registry",
    "evaluate": "evaluation.study",
    "compare": "evaluation.study",
    "predict_many": "app.batch",
    "cosmicray_cosmiq": "app.ccd",
    "adapt": "inference.adaptation",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cosmiq_pyro' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
