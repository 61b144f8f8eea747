"""One default model everywhere: every entry point's default is `models.defaults.DEFAULT_MODEL`
(read by introspection), ``"auto"``, which chooses among models shipped inside the package that
load without optional packages."""
import inspect
import sys
from pathlib import Path

import pytest

from cosmiq_pyro.models.defaults import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]


def test_every_entry_point_defaults_to_the_one_constant():
    import cosmiq_pyro as cq
    from cosmiq_pyro.app import modelcache
    from cosmiq_pyro.app.cli import build_parser

    for function in (cq.predict_many, cq.cosmicray_cosmiq):
        assert inspect.signature(function).parameters["model"].default is DEFAULT_MODEL, function.__name__
    assert build_parser().parse_args(["predict", "x.fits"]).model is DEFAULT_MODEL
    assert modelcache.DEFAULT_MODEL is DEFAULT_MODEL
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    action = next(a for a in predict._actions if "--model" in a.option_strings)
    assert f"{DEFAULT_MODEL} (default" in action.help  # what --help prints


def test_the_default_chooses_among_models_shipped_inside_the_package_that_need_no_optional_package(monkeypatch):
    import numpy as np

    import cosmiq_pyro as cq
    from cosmiq_pyro.app.automodel import candidate_models, is_auto
    from cosmiq_pyro.instruments import get_instrument, list_instruments
    from cosmiq_pyro.models.registry import PUBLISHED, PUBLISHED_DIR
    assert is_auto(DEFAULT_MODEL) and DEFAULT_MODEL not in PUBLISHED
    named = [get_instrument(c).models.published for c in list_instruments()]
    assert list(candidate_models()) == [n for n in named if n is not None] and "ACS-WFC-VI" in candidate_models()
    monkeypatch.setitem(sys.modules, "deepCR", None)  # ``import deepCR`` fails from here on
    with pytest.raises(ImportError):
        import deepCR  # noqa: F401
    for name in candidate_models():
        assert PUBLISHED[name] == f"{name}.pth" and (PUBLISHED_DIR / PUBLISHED[name]).is_file()
        model = cq.load(name)
        pred = cq.predict(model, np.random.default_rng(0).normal(200.0, 15.0, (64, 64)).astype(np.float32), T=2)
        assert model.bayesian and pred.novelty is not None, name


def test_the_docs_name_the_default():
    text = (ROOT / "docs" / "defaults.md").read_text()
    assert f"`{DEFAULT_MODEL}`" in text and "DEFAULT_MODEL" in text
