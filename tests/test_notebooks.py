"""The notebooks run top to bottom at smoke scale, through the runner `make notebooks` uses,
and the runner itself: which interpreter, which scale, what happens when a cell fails."""
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
sys.path.insert(0, str(NOTEBOOK_DIR))
from run_notebooks import main, run_notebook  # noqa: E402  (the runner lives beside the notebooks)
sys.path.remove(str(NOTEBOOK_DIR))
NAMES = ("01_quickstart.ipynb", "02_posterior_analysis.ipynb", "03_vi_vs_deterministic.ipynb", "04_novelty.ipynb")


def outputs(nb, kind=None):
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
            if kind is None or o.output_type == kind]


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_the_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_at_smoke_scale(name, tmp_path):
    source = NOTEBOOK_DIR / name
    before = source.read_bytes()
    copy = tmp_path / name
    shutil.copy(source, copy)
    run_notebook(copy, scale="smoke", timeout=600)
    nb = nbformat.read(copy, as_version=4)
    assert not outputs(nb, "error")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)  # every cell ran
    assert any("image/png" in o.get("data", {}) for o in outputs(nb, "display_data"))  # figures drawn
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    assert "scale: smoke" in text
    assert source.read_bytes() == before  # the committed notebook is not touched


def test_runner_uses_this_interpreter_the_scale_the_cache_and_the_notebook_directory(tmp_path):
    path = write_notebook(tmp_path / "probe.ipynb",
                          "import os, sys\nprint(sys.executable)\nprint(os.environ['COSMIQ_NOTEBOOK_SCALE'])\n"
                          "print(os.getcwd())\nprint(os.environ['COSMIQ_NOTEBOOK_CACHE'])")
    started = time.perf_counter()
    seconds = run_notebook(path, scale="full", timeout=120, cache_dir=tmp_path / "cache")
    elapsed = time.perf_counter() - started
    assert 0 < seconds <= elapsed  # the reported run time is the call's own, not a stale or made-up one
    lines = outputs(nbformat.read(path, as_version=4), "stream")[0]["text"].split()
    assert Path(lines[0]).resolve() == Path(sys.executable).resolve()
    assert lines[1] == "full"
    assert Path(lines[2]).resolve() == tmp_path.resolve()
    assert lines[3] == str(tmp_path / "cache")


def test_runner_leaves_a_notebook_with_a_failing_cell_untouched(tmp_path, capsys):
    path = write_notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('on purpose')")
    before = path.read_bytes()
    with pytest.raises(CellExecutionError, match="on purpose"):
        run_notebook(path, scale="smoke", timeout=120)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bad.ipynb"]  # no temporary file left behind
    assert main([str(path), "--scale", "smoke"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_runner_input_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ipynb"):
        run_notebook(tmp_path / "missing.ipynb")
    notebook = write_notebook(tmp_path / "ok.ipynb", "1")
    with pytest.raises(ValueError, match="scale"):
        run_notebook(notebook, scale="huge")
    (tmp_path / "not.ipynb").write_text("this is not json")
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        run_notebook(tmp_path / "not.ipynb")


def _version(text):
    return tuple(int(part) for part in text.split("."))


def stamps(nb):
    """Package versions a notebook's stored outputs say it ran on (``cosmiq_pyro X.Y.Z; scale: S``)."""
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    return re.findall(r"^cosmiq_pyro (\d+\.\d+\.\d+); scale: (smoke|full)$", text, flags=re.M)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_ran_on_this_version(name):
    from cosmiq_pyro import __version__

    found = stamps(nbformat.read(NOTEBOOK_DIR / name, as_version=4))
    assert len(found) == 1, f"{name} holds no version stamp: re-run it (make notebooks)"
    (version, scale), = found
    assert _version(version) >= _version(__version__), f"{name} ran on {version}, older than {__version__}: re-run it"


def test_stamp_reader_finds_the_stamp_and_compares_versions():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x")]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="cosmiq_pyro 0.1.0; scale: full\n")]
    assert stamps(nb) == [("0.1.0", "full")]
    assert _version("0.1.0") < _version("0.2.0") < _version("0.10.0")
