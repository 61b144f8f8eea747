"""The public surface: every public module declares ``__all__``, every name in it exists, the
top level keeps one loader, and the names that moved answer with a DeprecationWarning."""
import ast
import importlib
import pkgutil
import warnings

import pytest

import cosmiq_pyro


def public_modules():
    """Every module of the package whose dotted path has no ``_private`` part."""
    names = ["cosmiq_pyro"]
    for info in pkgutil.walk_packages(cosmiq_pyro.__path__, "cosmiq_pyro."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


def test_every_public_module_declares_all_and_its_names_exist():
    missing, absent = [], []
    for name in public_modules():
        spec = importlib.util.find_spec(name)
        tree = ast.parse(open(spec.origin).read())
        declared = any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
                       for node in tree.body)
        if not declared:
            missing.append(name)
            continue
        module = importlib.import_module(name)
        absent += [f"{name}.{attr}" for attr in module.__all__ if not hasattr(module, attr)]
    assert missing == [] and absent == []


def test_the_walk_sees_the_subpackages_and_skips_private_modules():
    names = public_modules()
    assert {"cosmiq_pyro.data.simulate.frames", "cosmiq_pyro.evaluation.metrics.detection",
            "cosmiq_pyro.model", "cosmiq_pyro.training"} <= set(names)
    assert not any("._" in name for name in names)


def test_top_level_keeps_load_and_warns_for_load_model():
    from cosmiq_pyro.models.registry import load_model

    assert cosmiq_pyro.load is load_model
    assert "load" in cosmiq_pyro.__all__ and "load_model" not in cosmiq_pyro.__all__
    with pytest.warns(DeprecationWarning, match="cosmiq_pyro.load_model is deprecated.*cosmiq_pyro.load"):
        assert cosmiq_pyro.load_model is load_model
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cosmiq_pyro.nope


@pytest.mark.parametrize("module, name, home", [
    ("cosmiq_pyro.io.fitsio", "write_hdulist_atomic", "cosmiq_pyro.io.fitswrite"),
    ("cosmiq_pyro.evaluation.plots", "plot_maps", "cosmiq_pyro.evaluation.plot_maps"),
    ("cosmiq_pyro.app.cli", "HELD_OUT_SEED", "cosmiq_pyro.data.seeds"),
])
def test_moved_names_warn_and_still_resolve(module, name, home):
    mod = importlib.import_module(module)
    assert name not in mod.__all__
    with pytest.warns(DeprecationWarning, match=f"{module}.{name} is deprecated.*{home}.{name}"):
        value = getattr(mod, name)
    assert value is getattr(importlib.import_module(home), name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            getattr(mod, "not_a_name")


def test_no_private_alias_left_in_predictive():
    from cosmiq_pyro.inference import predictive
    from cosmiq_pyro.utils.tiling import TILE_ALIGN

    assert not hasattr(predictive, "_ALIGN") and TILE_ALIGN == 4


def test_api_reference_documents_exactly_each_modules_all(tmp_path):
    """The generator behind docs/api/ (docs/_ext/apipages.py): one page per public module, each
    showing exactly the names of its ``__all__``, each name documented where it is defined."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))
    try:
        from apipages import write_pages
    finally:
        sys.path.pop(0)
    shown = write_pages(tmp_path)
    assert sorted(shown) == sorted(public_modules())
    for module, names in shown.items():
        assert sorted(names) == sorted(importlib.import_module(module).__all__), module
        text = (tmp_path / f"{module}.rst").read_text()
        for name, home in names.items():
            target = f":: {module}.{name}" if home == module else f"<{home}.{name}>"
            assert target in text, (module, name)
    assert (tmp_path / "index.rst").is_file()
    # a name documented on its home page is not documented again on a facade's page
    top = (tmp_path / "cosmiq_pyro.rst").read_text()
    assert ".. autofunction:: cosmiq_pyro.predict" not in top and "<cosmiq_pyro.inference.predictive.predict>" in top


#: (module, name) pairs that moved in 0.2.0: the package itself must import them from their home.
MOVED = {("cosmiq_pyro.io.fitsio", "write_hdulist_atomic"): "cosmiq_pyro.io.fitswrite",
         ("cosmiq_pyro.evaluation.plots", "plot_maps"): "cosmiq_pyro.evaluation.plot_maps",
         ("cosmiq_pyro.app.cli", "HELD_OUT_SEED"): "cosmiq_pyro.data.seeds",
         ("cosmiq_pyro", "load_model"): "cosmiq_pyro.models.registry"}


def test_the_package_imports_no_moved_name():
    from pathlib import Path

    root = Path(cosmiq_pyro.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    if (module, alias.name) in MOVED:
                        found.append(f"{path.relative_to(root.parent)}: import {alias.name} from "
                                     f"{MOVED[module, alias.name]}, not {module}")
    assert found == []
