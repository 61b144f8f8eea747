"""cosmiq_pyro: cosmic-ray detection with calibrated uncertainty for HST ACS/WFC-style CCD images.

A deepCR-style U-Net (`UNet2Sigmoid`) and its variational Bayesian twin written in Pyro
(`UNet2SigmoidVI`), trained with `fit_deterministic` / `fit_svi`, sampled with `predict`
into per-pixel probability, entropy, aleatoric and epistemic maps.

Names are imported lazily so that ``import cosmiq_pyro.data.simulate`` or
``import cosmiq_pyro.evaluation.metrics`` does not pay for importing torch and Pyro.
"""
from importlib import import_module

from ._version import __version__

# public name -> (submodule that defines it, its name there).  No submodule shares a public
# name (`predictive`, not `predict`; `study`, not `compare`): importing a submodule binds its
# name on the package and would shadow the function.
_EXPORTS = {
    "UNet2Sigmoid": ("models.unet", "UNet2Sigmoid"),
    "UNet2SigmoidVI": ("models.bayesian", "UNet2SigmoidVI"),
    "IIDNormalPrior": ("models.priors", "IIDNormalPrior"),
    "KaimingNormalPrior": ("models.priors", "KaimingNormalPrior"),
    "CentredNormalPrior": ("models.priors", "CentredNormalPrior"),
    "fit_svi": ("inference.fit", "fit_svi"),
    "fit_deterministic": ("inference.fit", "fit_deterministic"),
    "FitResult": ("models.results", "FitResult"),
    "predict": ("inference.predictive", "predict"),
    "Prediction": ("inference.predictive", "Prediction"),
    "save": ("models.registry", "save"),
    "load": ("models.registry", "load_model"),
    "evaluate": ("evaluation.study", "evaluate"),
    "compare": ("evaluation.study", "compare"),
    "predict_many": ("app.batch", "predict_many"),
    "cosmicray_cosmiq": ("app.ccd", "cosmicray_cosmiq"),
    "adapt": ("inference.adaptation", "adapt"),
}

#: Removed in 0.2.0, answered with a DeprecationWarning for one release.
_MOVED = {"load_model": ("cosmiq_pyro", "load")}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(import_module(f".{module}", __name__), attr)
    if name in _MOVED:
        from .utils.deprecation import moved_names

        return moved_names(__name__, _MOVED)(name)
    raise AttributeError(f"module 'cosmiq_pyro' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
