"""The package's default model, in one place (a tiny module: the CLI reads it at start-up).

`DEFAULT_MODEL` is what every entry point uses when no model is named: ``cosmiq predict``
(``--model``), `cosmiq_pyro.app.batch.predict_many`, `cosmiq_pyro.app.ccd.cosmicray_cosmiq`
and the docs.  It is `AUTO` (``"auto"``): the model is chosen per frame
(`cosmiq_pyro.app.automodel`) among the Bayesian models shipped inside the package
(`cosmiq_pyro.models.registry.PUBLISHED`; they need no optional package, give epistemic maps and
carry their novelty models):

* the camera recognised from the header (or given as ``instrument=``) picks the model its spec
  names (``[models] published``: ``ACS-WFC-VI``, ``WFC3-UVIS-VI``, ``DECam-VI``);
* a frame of any other camera, or without a header, gets the shipped model with the lowest
  novelty margin (its novelty minus that model's own threshold).

deepCR's own weights (``"ACS-WFC"``) need the optional ``deepCR`` package and give one
deterministic pass; they are never chosen automatically.
"""
#: The request that chooses the model per frame (`cosmiq_pyro.app.automodel`).
AUTO = "auto"
DEFAULT_MODEL = AUTO

__all__ = ["AUTO", "DEFAULT_MODEL"]
