"""The wheel users install: it holds every published model with its card and novelty model, and
the package works from it outside the repository (slow: builds the wheel)."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "cosmiq_pyro" / "models" / "published"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: the build uses this environment's setuptools, nothing is downloaded
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, cwd=out)
    (path,) = out.glob("cosmiq_pyro-*.whl")
    return path


@pytest.mark.slow
def test_wheel_holds_every_published_file_and_the_version(wheel):
    from cosmiq_pyro import __version__

    assert wheel.name.startswith(f"cosmiq_pyro-{__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"cosmiq_pyro/models/published/{p.name}" for p in PUBLISHED.iterdir() if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)
    specs = {f"cosmiq_pyro/{p.relative_to(ROOT / 'cosmiq_pyro').as_posix()}"
             for p in (ROOT / "cosmiq_pyro").rglob("*.toml")}
    assert specs <= names, sorted(specs - names)  # instrument specifications, where there are any
    assert not any(n.startswith(("tests/", "benchmarks/", "notebooks/", "docs/")) for n in names)
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "cosmiq = cosmiq_pyro.app.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()


@pytest.mark.slow
def test_published_models_load_from_the_wheel_outside_the_repository(wheel, tmp_path):
    """Unpacked, the wheel alone (first on sys.path, run from another folder, deepCR not
    importable) loads every shipped checkpoint with its novelty model and cleans astroscrappy's
    gmos.fits from the command line with the default model."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    script = f"""
import sys
sys.path.insert(0, {str(site)!r})
sys.modules["deepCR"] = None                        # the default model must not need deepCR
import astroscrappy, pathlib, shutil
import cosmiq_pyro as cq
from cosmiq_pyro.models.registry import PUBLISHED
assert cq.__file__.startswith({str(site)!r}), cq.__file__
for name, entry in PUBLISHED.items():
    if isinstance(entry, str):                      # a checkpoint shipped in the package
        fit = cq.load(name)
        assert fit.novelty is not None, name
        print("loaded", name, fit.weights_file)
shutil.copy(pathlib.Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits", "gmos.fits")
from cosmiq_pyro.app.cli import main
sys.exit(main(["predict", "gmos.fits", "-o", "products", "-T", "2"]))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "loaded ACS-WFC-VI" in run.stdout
    assert str(site) in run.stdout  # the weights came from the unpacked wheel
    assert (work / "products" / "gmos_cosmiq.fits").is_file()
