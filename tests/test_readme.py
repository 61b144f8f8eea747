"""README claims, checked against the package and the validation page: length, no research log,
the shipped-models table, the default model, the torch pin, the figures and the numbers quoted.
(Whether its examples run is tests/test_examples.py.)"""
import ast
import builtins
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _section(title):
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _python_blocks(section):
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _check_names(source):
    """Names loaded before any binding, and imported names bound again later (in order)."""
    defined = set(dir(builtins))
    imported, undefined, rebound = set(), [], []
    for node in ast.parse(source).body:
        loads = [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
        undefined += [name for name in loads if name not in defined]
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {(a.asname or a.name).split(".")[0] for a in node.names}
            imported |= names
            defined |= names
        stores = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        rebound += sorted(stores & imported)
        defined |= stores
    return undefined, rebound


def test_readme_is_short_and_holds_no_research_log():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    assert not re.search(r"\bissues? \d+|^\[\d+\]|\bitem \d+|scratch script|this 2-core machine", text, flags=re.I | re.M)


def test_every_python_block_defines_every_name_it_uses():
    blocks = _python_blocks(README.read_text())
    assert len(blocks) >= 2
    for block in blocks:  # each block stands alone: a reader copies one
        undefined, rebound = _check_names(block)
        assert undefined == [] and rebound == [], block


def test_one_frame_from_python_uses_the_shipped_model_in_few_lines():
    (block,) = _python_blocks(_section("Clean one frame"))
    code = [line for line in block.splitlines() if line.strip() and not line.startswith(("import", "from"))]
    assert 'cq.load("ACS-WFC-VI")' in block and "cq.predict(" in block and len(code) <= 5
    shell = re.findall(r"```bash\n(.*?)```", _section("Clean one frame"), flags=re.S)[0]
    assert shell.splitlines()[0].startswith("cosmiq predict ") and "--model" not in shell.splitlines()[0]


def test_name_check_catches_the_old_quickstart():
    old = ("from cosmiq_pyro.training import train\n"
           "trainer = train(image=train_dirs, mode='pair')\n"
           "pred = predict(image)\n"
           "train = SimulatedDataset(256)\n")
    undefined, rebound = _check_names(old)
    assert undefined == ["train_dirs", "predict", "image", "SimulatedDataset"] and rebound == ["train"]


def test_shipped_models_table_is_the_registry_and_the_default_is_the_cli_default():
    from cosmiq_pyro.app.cli_parser import build_parser
    from cosmiq_pyro.models.registry import PUBLISHED

    rows = re.findall(r"^\| `([^`]+)` \|", _section("Shipped models"), flags=re.M)
    assert sorted(rows) == sorted(PUBLISHED)
    default = build_parser().parse_args(["predict", "x.fits"]).model
    assert default == "auto" and f"default model `{default}`" in _section("Clean one frame")


def test_install_pins_the_torch_the_makefile_installs():
    pin = re.search(r"^TORCH\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert f"pip install {pin}" in _section("Install")
    assert "pip install ." in _section("Install")


def test_figures_and_links_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith("http")]
    assert "docs/demo_maps.png" in local
    # guide pages of this repository must exist; the reference pages (products.md ...) land
    # with their own work and are checked once present
    missing = [t for t in local if not (ROOT / t).exists()
               and Path(t).stem not in {"products", "cameras", "simulation", "adapting", "predictive_methods", "defaults"}]
    assert missing == []


def test_quoted_figures_match_the_validation_page():
    """The acceptance numbers the README quotes, against the table on docs/validation.md."""
    readme = _section("Shipped models")
    tpr = re.search(r"finds ([\d.]+) % / ([\d.]+) % of\s+CR pixels.*?against deepCR's ([\d.]+) % / ([\d.]+) %", readme, re.S)
    assert tpr, "the README quotes the acceptance TPRs"
    validation = (ROOT / "docs" / "validation.md").read_text()
    row = lambda name: re.search(rf"^\| {re.escape(name)}[^|]*\| \**([\d.]+)\** \| \**([\d.]+)\** \| \**[\d.]+\** \| \**[\d.]+\** \| \**([\d.]+)\** \|",
                                 validation, flags=re.M)
    vi, deepcr = row("ACS-WFC-VI, T=16, temperature 0.987"), row("deepCR ACS-WFC")
    assert [round(float(v), 1) for v in vi.groups()[:2]] == [float(tpr.group(1)), float(tpr.group(2))]
    assert [round(float(v), 1) for v in deepcr.groups()[:2]] == [float(tpr.group(3)), float(tpr.group(4))]
    ratio = int(re.search(r"(\d+)× lower calibration error", readme.replace("\n", " ")).group(1))
    assert round(float(deepcr.group(3)) / float(vi.group(3))) == ratio
