"""The package's default model, in one place (a tiny module: the CLI reads it at start-up).

`DEFAULT_MODEL` is what every entry point uses when no model is named: ``cosmiq predict``
(``--model``), `cosmiq_pyro.app.batch.predict_many`, `cosmiq_pyro.app.ccd.cosmicray_cosmiq`
and the docs.  It is ``"ACS-WFC-VI"``, the Bayesian twin of deepCR's ACS/WFC model shipped inside
the package (`cosmiq_pyro.models.registry.PUBLISHED`): it needs no optional package, gives
epistemic maps and carries its novelty model.  deepCR's own weights (``"ACS-WFC"``) need the
optional ``deepCR`` package and give one deterministic pass.
"""
DEFAULT_MODEL = "ACS-WFC-VI"

__all__ = ["DEFAULT_MODEL"]
