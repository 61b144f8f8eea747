"""README quickstart: every name it uses is defined in it, and no imported name is rebound."""
import ast
import builtins
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


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


def test_quickstart_defines_every_name_it_uses():
    blocks = _python_blocks(_section("Python quickstart"))
    assert len(blocks) >= 3
    undefined, rebound = _check_names("\n".join(blocks))  # the blocks run in order
    assert undefined == [] and rebound == []


def test_name_check_catches_the_old_quickstart():
    old = ("from cosmiq_pyro.training import train\n"
           "trainer = train(image=train_dirs, mode='pair')\n"
           "pred = predict(image)\n"
           "train = SimulatedDataset(256)\n")
    undefined, rebound = _check_names(old)
    assert undefined == ["train_dirs", "predict", "image", "SimulatedDataset"] and rebound == ["train"]
