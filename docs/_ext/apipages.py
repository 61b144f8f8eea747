"""Generate the API reference: one page per public module, documenting exactly its ``__all__``.

A name is documented (autodoc + numpydoc) on the page of the module that defines it; a module
that re-exports names (a package facade such as ``cosmiq_pyro`` or
``cosmiq_pyro.data.simulate``) lists them with a link to that page.  Public modules are those
whose dotted path has no ``_private`` part; each must declare ``__all__`` (a test checks it).
The pages are written to ``docs/api/`` at every build (the folder is not committed), so a
renamed or removed name fails the build instead of going stale.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

PACKAGE = "cosmiq_pyro"


def public_modules(package: str = PACKAGE) -> list[str]:
    """Dotted names of the package's public modules, the package itself first."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names, key=lambda n: (n.count("."), n))


def defined_names(module_name: str) -> set[str]:
    """Names bound at the top level of a module's source by def, class or assignment."""
    origin = importlib.util.find_spec(module_name).origin
    names = set()
    for node in ast.parse(Path(origin).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def home_of(module_name: str, name: str, modules: list[str]) -> str | None:
    """The public module that defines ``name`` and lists it in ``__all__``: where it is documented."""
    obj = getattr(importlib.import_module(module_name), name)
    owner = getattr(obj, "__module__", None) if (inspect.isclass(obj) or inspect.isroutine(obj)) else None
    candidates = [owner] if owner in modules else modules
    for candidate in candidates:
        mod = importlib.import_module(candidate)
        if name in getattr(mod, "__all__", ()) and name in defined_names(candidate):
            return candidate
    return None


def directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if inspect.isroutine(obj):
        return "autofunction"
    return "autodata"


def module_page(module_name: str, modules: list[str]) -> tuple[str, dict]:
    """The reST text of one module's page, and {name: home module} of what it documents or links."""
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    own = defined_names(module_name)
    title = f"``{module_name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module_name}", "   :no-members:", ""]
    homes, here, elsewhere = {}, [], []
    for name in exported:
        if name in own:
            here.append(name)
            homes[name] = module_name
        else:
            home = home_of(module_name, name, modules)
            if home is None:  # defined in a private module (``__version__``): documented here
                here.append(name)
                homes[name] = module_name
            else:
                elsewhere.append((name, home))
                homes[name] = home
    if elsewhere:
        lines += ["Names defined in other modules", "-" * 30, "",
                  ".. list-table::", "   :header-rows: 0", ""]
        for name, home in elsewhere:
            lines += [f"   * - :py:obj:`{name} <{home}.{name}>`", f"     - defined in :py:mod:`{home}`"]
        lines.append("")
    if here:
        if elsewhere:
            lines += ["Defined here", "-" * 12, ""]
        attr_docs = _attribute_docs(module_name)
        for name in here:
            obj = getattr(module, name)
            if directive(obj) == "autodata":
                # a constant: its ``#:`` comment and its value (autodoc would show the docstring
                # of the value's type, e.g. ``str``, for a constant without a comment)
                lines += [f".. py:data:: {module_name}.{name}"]
                if not _long_value(obj):
                    lines += [f"   :value: {obj!r}"]
                lines += [""] + [f"   {line}" for line in attr_docs.get(name, [])]
            else:
                lines += [f".. {directive(obj)}:: {module_name}.{name}"]
                if directive(obj) == "autoclass":
                    lines += ["   :members:", "   :show-inheritance:"]
            lines.append("")
    return "\n".join(lines) + "\n", homes


def _long_value(obj) -> bool:
    return len(repr(obj)) > 80 or "\n" in repr(obj)


def _attribute_docs(module_name: str) -> dict:
    """``{name: [lines]}`` of the module's ``#:`` comments (Sphinx's own source analyzer)."""
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    except Exception:  # a module without source: no comments to show
        return {}
    return {name: list(lines) for (scope, name), lines in docs.items() if scope == ""}


def write_pages(outdir: Path, package: str = PACKAGE) -> dict:
    """Write ``outdir/<module>.rst`` for every public module and ``outdir/index.rst``.

    Returns
    -------
    dict
        ``{module: {name: home module}}`` for every public module: what the reference shows.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    modules = public_modules(package)
    shown, written = {}, set()
    for name in modules:
        text, shown[name] = module_page(name, modules)
        path = outdir / f"{name}.rst"
        written.add(path.name)
        if not path.exists() or path.read_text() != text:  # unchanged pages keep their mtime
            path.write_text(text)
    index = ["API reference", "=============", "",
             "Every public module, with exactly the names of its ``__all__``. The top-level",
             "package ``cosmiq_pyro`` gathers the everyday names; the deepCR-compatible import paths",
             "``cosmiq_pyro.model`` and ``cosmiq_pyro.training`` stay for scripts written for deepCR.", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {name}" for name in modules]
    text = "\n".join(index) + "\n"
    written.add("index.rst")
    if not (outdir / "index.rst").exists() or (outdir / "index.rst").read_text() != text:
        (outdir / "index.rst").write_text(text)
    for stale in outdir.glob("*.rst"):
        if stale.name not in written:
            stale.unlink()
    return shown
