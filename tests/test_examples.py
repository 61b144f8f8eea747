"""Every code example in README.md and docs/*.md: its names exist (fast), and it runs (slow).

Fast checks (part of ``make test``): every Python block parses; every ``cosmiq_pyro`` module,
import and attribute it names exists, without a DeprecationWarning; every dotted
``cosmiq_pyro.…`` name and every ``*.py`` file named in the text exists; every ``cosmiq`` command
line parses with the real parser; README's Layout lists exactly the package's modules.

Slow checks (``make test-slow``, CI): each page of `RUN_PAGES` has its blocks run in order, Python blocks in one
namespace and ``cosmiq`` command lines through `cosmiq_pyro.app.cli.main`, in a scratch directory
holding stand-ins for data that is not here: synthetic ``_flc`` frames with the names the
examples use, a raw FITS frame in ADU, astroscrappy's ``gmos.fits``, deepCR-style pair files
for deepCR's training set, small checkpoints for ``vi.pth`` / ``det.pth``.  Examples run at
smoke scale: the substitutions in `SMOKE` shrink frame counts, sizes, epochs and draws; a
cluster address becomes a one-process local cluster (``--workers 1``).  A block that cannot
run anywhere is marked in the page by an HTML comment ``<!-- no-run -->`` on the line above it.
"""
from __future__ import annotations

import ast
import functools
import importlib
import os
import re
import shlex
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- no-run -->\n)?```(python|bash)\n(.*?)```", re.S)

#: (pattern, replacement) applied to every block before it runs: smoke scale.
SMOKE = [
    (r"\bT=16\b", "T=2"), (r"-T 16\b", "-T 2"),
    (r"make_dataset\(64, size=256", "make_dataset(4, size=64"),
    (r"SimulatedDataset\(256, size=128", "SimulatedDataset(8, size=64"),
    (r"simulate_frame\(size=256", "simulate_frame(size=64"),
    (r"make_dataset\(1, size=256", "make_dataset(1, size=64"),
    (r"\bhidden=(16|32)\b", "hidden=4"), (r"\bepoch=\d+", "epoch=1"), (r"\bepochs=\d+", "epochs=1"),
    (r"\bphase0_epochs=6\b", "phase0_epochs=1"), (r"--epochs \d+", "--epochs 1"),
    (r"--n 512 --size 256", "--n 4 --size 64"), (r"simulate:90", "simulate:2"),
    (r"--workers 4", "--workers 1"), (r"local_client\(4\)", "local_client(1)"),
    (r"--scheduler tcp://head:8786", "--workers 1"),
]
#: Pages whose examples run in the slow test, with the stand-ins below.  Every other page under
#: docs/ (the reference pages written with each feature) gets the fast checks; a page joins this
#: list once `_stand_ins` makes the data its examples read.
#: Top-level folders of this repository: a ``*.py`` path in a page under one of them must exist.
REPO_DIRS = {"cosmiq_pyro", "benchmarks", "tests", "notebooks", "docs"}
RUN_PAGES = ["README.md", "getting_started.md", "cleaning.md", "uncertainty.md", "training.md",
             "deepcr.md", "validation.md"]


def blocks(page: Path):
    """``(language, source, runnable)`` of each fenced python/bash block of a page, in order."""
    return [(lang, src, not marker) for marker, lang, src in BLOCK.findall(page.read_text())]


def command_lines(source: str):
    """The ``cosmiq`` command lines of a bash block (comments dropped), as argument lists; other
    commands (``make``, ``pip``, ...) are not the package's and are left alone."""
    lines = []
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line.split("  #")[0].split(" # ")[0].rstrip()
                                              for line in source.splitlines()))
    for line in joined.splitlines():  # backslash continuations joined, comments dropped
        line = line.strip()
        if line.startswith("cosmiq "):
            lines.append(shlex.split(line)[1:])
    return lines


def resolve(dotted: str):
    """Import the longest module prefix of ``dotted`` and walk the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@functools.lru_cache(maxsize=1)
def repository_module_names() -> frozenset:
    """Stems of every ``.py`` file of the repository (the virtual environment and .git left out),
    walked once for all pages."""
    stems = set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in (".venv", ".git")]
        stems.update(f[:-3] for f in files if f.endswith(".py"))
    return frozenset(stems)


def names_used(source: str):
    """Dotted ``cosmiq_pyro`` names a Python block imports or reads through its import aliases."""
    tree = ast.parse(source)
    aliases, names = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("cosmiq_pyro"):
                    names.append(a.name)
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cosmiq_pyro"):
            for a in node.names:
                names.append(f"{node.module}.{a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            names.append(f"{aliases[node.value.id]}.{node.attr}")
    return names


def test_pages_are_found_and_hold_examples():
    assert ROOT / "README.md" in PAGES and ROOT / "docs" / "cleaning.md" in PAGES
    assert sum(lang == "python" for page in PAGES for lang, _, _ in blocks(page)) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_example_names_exist(page):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for lang, source, _ in blocks(page):
            if lang == "python":
                for name in names_used(source):
                    resolve(name)
        text = page.read_text()
        for dotted in set(re.findall(r"\bcosmiq_pyro(?:\.[A-Za-z_]\w*)+", text)):
            resolve(dotted.rstrip("."))
    for filename in set(re.findall(r"`([\w/]*?(\w+)\.py)`", text)):
        if "/" in filename[0] and filename[0].split("/")[0] not in REPO_DIRS:
            continue  # another package's file (astropy/...), not this repository's
        assert filename[1] in repository_module_names(), f"{page.name} names {filename[0]}, which does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_example_command_lines_parse(page):
    from cosmiq_pyro.app.cli_parser import build_parser

    parser = build_parser()
    for lang, source, _ in blocks(page):
        if lang == "bash":
            for argv in command_lines(source):
                parser.parse_args(argv)  # SystemExit (status 2) on an unknown option


def test_stale_name_checks_fail_on_stale_names():
    assert {"accept_camera", "conftest", "predictive"} <= repository_module_names()
    assert "no_such_script" not in repository_module_names() and "ops" not in repository_module_names()  # xarray.computation.ops lies in .venv only
    with pytest.raises(AttributeError):
        resolve("cosmiq_pyro.inference.predictive.no_such_name")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(DeprecationWarning):
            resolve("cosmiq_pyro.io.fitsio.write_hdulist_atomic")
    assert sorted(names_used("import cosmiq_pyro as cq\nfrom cosmiq_pyro.io import fitsio\ncq.load_model('x')\nfitsio.read_hst")) == [
        "cosmiq_pyro", "cosmiq_pyro.io.fitsio", "cosmiq_pyro.io.fitsio.read_hst", "cosmiq_pyro.load_model"]
    assert command_lines("make test\ncosmiq predict 'a b.fits' -o out/   # comment\n") == [["predict", "a b.fits", "-o", "out/"]]
    assert command_lines("cosmiq adapt --out m.pth \\\n   --n-frames 2   # note\n") == [["adapt", "--out", "m.pth", "--n-frames", "2"]]


def test_readme_layout_lists_every_module():
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[layout.index("```\n") + 4:]
    layout = layout[:layout.index("```")]
    listed, current = {}, None
    for line in layout.splitlines()[1:]:
        match = re.match(r"\s+(\w+)/\s+(.*)", line)
        if match:
            current = match.group(1)
            listed[current] = set(re.findall(r"\w+", match.group(2)))
        elif current and line.startswith("    ") and line.strip():  # a continuation line
            listed[current] |= set(re.findall(r"\w+", line))
        else:
            current = None
    package = ROOT / "cosmiq_pyro"
    for sub, words in listed.items():
        modules = {p.stem for p in (package / sub).glob("*.py") if not p.stem.startswith("_")}
        modules |= {p.name for p in (package / sub).iterdir() if p.is_dir() and not p.name.startswith("_")
                    and (p / "__init__.py").exists() or p.name == "published"}
        assert modules <= words, f"README Layout, {sub}/: missing {sorted(modules - words)}"
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert subpackages == set(listed), f"README Layout lists {sorted(listed)}, the package has {sorted(subpackages)}"


# ---------------------------------------------------------------- running the examples (slow)

def _flc(path: Path, seed: int, size: int = 64):
    """A two-chip ACS/WFC-like ``_flc`` file in electrons (PRIMARY + (SCI, ERR, DQ) x 2)."""
    from astropy.io import fits
    from cosmiq_pyro.data.simulate import simulate_frame

    hdus = [fits.PrimaryHDU(header=fits.Header({"INSTRUME": "ACS", "DETECTOR": "WFC", "EXPTIME": 500.0}))]
    for ver in (1, 2):
        frame = simulate_frame(size=size, seed=seed + ver)
        head = fits.Header({"BUNIT": "ELECTRONS", "EXTVER": ver})
        hdus += [fits.ImageHDU(frame.image.astype(np.float32), head, name="SCI"),
                 fits.ImageHDU(np.ones((size, size), np.float32), head, name="ERR"),
                 fits.ImageHDU(np.zeros((size, size), np.int16), head, name="DQ")]
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path)
    return path


def _stand_ins(where: Path, text: str):
    """The files and folders the examples of a page (``text``) name, made small; a checkpoint
    the page writes itself (``--out det.pth``, ``cq.save("vi.pth"``) is left to the page."""
    import astroscrappy
    from astropy.io import fits
    import cosmiq_pyro as cq
    from cosmiq_pyro.data.simulate import make_dataset, simulate_frame, write_pairs

    _flc(where / "j8xx01abq_flc.fits", 0)
    for k, name in enumerate(["visit1/j1_flc.fits", "visit2/j2_flc.fits", "archive/j3_flc.fits", "extra/j4_flc.fits"]):
        _flc(where / name, 10 * (k + 1))
    (where / "more.txt").write_text("extra/j4_flc.fits\n")
    raw = simulate_frame(size=64, seed=7).image / 1.9  # ADU at 1.9 e-/ADU
    for name in ("frame.fits", "raw_frame.fits"):
        fits.PrimaryHDU(raw.astype(np.float32)).writeto(where / name)
    shutil.copy(Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits", where / "gmos.fits")
    pairs = write_pairs(where / "deepCR_pairs", make_dataset(4, size=64, seed=5))
    target = where / "deepCR_data" / "F606W"
    target.mkdir(parents=True)
    for path in [*map(Path, pairs), Path(pairs[0]).parent / "sky.npy"]:
        shutil.copy(path, target / path.name)
    train = (np.stack([simulate_frame(size=64, seed=s).image for s in range(2)]),
             np.stack([simulate_frame(size=64, seed=s).mask for s in range(2)]), None)
    det = cq.fit_deterministic(cq.UNet2Sigmoid(hidden=4), train, epochs=1, batch_size=2, progress=False)
    vi = cq.fit_svi(cq.UNet2SigmoidVI(hidden=4), train, epochs=1, batch_size=2, progress=False)
    for name, fit in (("det.pth", det), ("vi.pth", vi)):
        if f"--out {name}" not in text and f'cq.save("{name}"' not in text:
            cq.save(where / name, fit)


def smoke(source: str) -> str:
    for pattern, replacement in SMOKE:
        source = re.sub(pattern, replacement, source)
    return source


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if p.name in RUN_PAGES and any(run for _, _, run in blocks(p))],
                         ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    from cosmiq_pyro.app.cli import main

    pytest.importorskip("deepCR")
    monkeypatch.chdir(tmp_path)
    _stand_ins(tmp_path, page.read_text())
    namespace = {"__name__": "__example__"}
    for lang, source, runnable in blocks(page):
        if not runnable:
            continue
        source = smoke(source)
        if lang == "python":
            exec(compile(source, f"{page.name} example", "exec"), namespace)
        else:
            for argv in command_lines(source):
                assert main(argv) == 0, f"{page.name}: cosmiq {shlex.join(argv)} failed"


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_names_exist(notebook):
    """The names the committed notebooks import from the package exist, without a
    DeprecationWarning (running them is the slow tests/test_notebooks.py)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    source = "\n".join(line for cell in nb.cells if cell.cell_type == "code"
                       for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in names_used(source):
            resolve(name)
