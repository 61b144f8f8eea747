"""Sphinx configuration of the cosmiq_pyro site: ``make docs`` builds it with warnings as errors.

Pages are MyST Markdown (myst-nb, which also renders the committed notebooks from their stored
outputs: nothing is executed).  The API reference is generated at every build by
``_ext/apipages.py`` from each public module's ``__all__``.  The index's "Reference pages"
toctree lists every other top-level page found here, so pages written beside the guide (camera
specifications, simulation, adapting, predictive methods, products, defaults) join the site when
they land, and a missing one breaks nothing.
"""
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import cosmiq_pyro  # noqa: E402
from apipages import write_pages  # noqa: E402

project = "cosmiq_pyro"
author = "the cosmiq_pyro developers"
copyright = "2026, the cosmiq_pyro developers"
release = cosmiq_pyro.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]

#: The guide pages in reading order; `reference_pages` adds every other top-level page.
GUIDE = ["getting_started", "cleaning", "uncertainty", "training", "deepcr", "tutorials"]
ABOUT = ["validation", "api/index", "changelog", "contributing"]
#: Pages reached from a guide page's own toctree.
SUBPAGES = ["study_tables"]
#: Pages written by other parts of the project, in the order the index lists them when present.
KNOWN_REFERENCE = ["products", "cameras", "simulation", "adapting", "predictive_methods", "defaults"]

root_doc = "index"
exclude_patterns = ["_build", "_ext", "**.ipynb_checkpoints", "study/*.md", "README.md"]
templates_path = []
# Heading levels that skip one (an included report starts at H4) are cosmetic, not errors.
suppress_warnings = ["myst.header"]

# Docstrings write `name` for code names: resolve them as Python objects where they exist and
# leave plain code text where not (nitpicky off; a broken explicit link in a page still warns).
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist", "substitution"]
myst_heading_anchors = 3
nb_execution_mode = "off"          # render the stored outputs; never run a notebook here
nb_merge_streams = True

html_theme = "pydata_sphinx_theme"
html_title = f"cosmiq_pyro {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []
html_last_updated_fmt = None


def reference_pages() -> list:
    """Top-level pages not in the guide or about lists: the known ones first, then the rest."""
    skip = {"index", *GUIDE, *ABOUT, *SUBPAGES}
    found = sorted(p.stem for p in DOCS.glob("*.md") if p.stem not in skip)
    return [p for p in KNOWN_REFERENCE if p in found] + [p for p in found if p not in KNOWN_REFERENCE]


def _unlink_missing(app, docname, source):
    """A guide page's link to a reference page that has not landed (``[text](cameras.md)``)
    becomes its plain text, so the guide builds before and after the page exists."""
    for page in KNOWN_REFERENCE:
        if not (DOCS / f"{page}.md").exists():
            source[0] = re.sub(r"\[([^\]]+)\]\(" + re.escape(page) + r"\.md(#[^)]*)?\)", r"\1", source[0])


def _fill_index(app, docname, source):
    """Replace the index's ``{reference-pages}`` line with a toctree of `reference_pages`."""
    if docname != "index":
        return
    pages = reference_pages()
    toc = "" if not pages else ("```{toctree}\n:caption: Reference pages\n:maxdepth: 1\n\n"
                                + "\n".join(pages) + "\n```\n")
    source[0] = source[0].replace("{reference-pages}\n", toc)


def _copy_notebooks(app):
    """Copy ``notebooks/*.ipynb`` into ``docs/tutorials/`` (not committed): Sphinx reads only its
    source folder."""
    target = DOCS / "tutorials"
    target.mkdir(exist_ok=True)
    wanted = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    for stale in target.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        source, copy = ROOT / "notebooks" / name, target / name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)


def _api_pages(app):
    write_pages(DOCS / "api")


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
    app.connect("builder-inited", _api_pages)
    app.connect("source-read", _fill_index)
    app.connect("source-read", _unlink_missing)
