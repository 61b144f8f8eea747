"""The package's import graph: no cycles, no upward imports (DEVELOPING.md, "Floors")."""
import ast
import re
from pathlib import Path

import cosmiq_pyro

PACKAGE = Path(cosmiq_pyro.__file__).parent
#: (module prefix, floor): a module may import only from its own floor or lower ones; the longest
#: matching prefix decides.  The seed-compatibility shims and the top-level __init__ are exempt.
FLOORS = [
    ("utils", 0), ("_version", 0),
    ("instruments", 1), ("io", 1), ("data", 1), ("evaluation.metrics", 1),
    ("models", 2),
    ("inference", 3),
    ("evaluation", 4),
    ("deepcr", 5),
    ("app", 6),
]
EXEMPT = {"__init__", "model", "training"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def floor_of(name: str) -> int:
    matches = [(len(prefix), floor) for prefix, floor in FLOORS if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"module {name} has no floor in test_layering.FLOORS"
    return max(matches)[1]


def imports_of(path: Path, name: str) -> set:
    """Package-internal modules imported by one file (absolute or relative, at any depth)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(anchor + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("cosmiq_pyro"):
                target = node.module[len("cosmiq_pyro"):].lstrip(".")
            else:
                continue
            for alias in node.names:  # "from . import metrics" imports a submodule
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if (PACKAGE / sub.replace(".", "/")).exists()
                          or (PACKAGE / (sub.replace(".", "/") + ".py")).exists() else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cosmiq_pyro."):
                    found.add(alias.name[len("cosmiq_pyro."):])
    return {t for t in found if t}


def graph() -> dict:
    return {module_name(p): imports_of(p, module_name(p)) for p in PACKAGE.rglob("*.py")}


def test_no_upward_imports():
    upward = []
    for name, targets in graph().items():
        if name.split(".")[-1] in EXEMPT and name.count(".") == 0 or name == "__init__":
            continue
        for target in targets:
            if floor_of(target) > floor_of(name):
                upward.append(f"{name} (floor {floor_of(name)}) imports {target} (floor {floor_of(target)})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles_between_modules():
    edges = {name: {t for t in targets if t != name} for name, targets in graph().items()}
    # a package's __init__ may re-export its own submodules: drop parent -> child edges
    edges = {n: {t for t in ts if not t.startswith(n + ".")} for n, ts in edges.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in edges.get(node, ()):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt in edges and nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_check_sees_imports():
    """The parser finds relative imports at every depth (so the checks above can fail)."""
    g = graph()
    assert "models.registry" in g["inference.predictive"]
    assert "io.checkpoint" in g["models.registry"]
    assert "evaluation.metrics" in g["evaluation.study.report"]


def third_party_imports(path: Path) -> set:
    """Top-level names of the non-package modules a file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {"cosmiq_pyro"}


def test_walls():
    """metrics: numpy only (no torch/pyro); instruments: imports only utils, no torch; simulate: no torch; unet: no Pyro; AutoNormal's
    private names only in models/guides.py."""
    for path in (PACKAGE / "evaluation" / "metrics").rglob("*.py"):
        assert not third_party_imports(path) & {"torch", "pyro", "scipy"}, path
    for path in (PACKAGE / "instruments").rglob("*.py"):  # below io/data: facts, no torch
        assert not third_party_imports(path) & {"torch", "pyro", "numpy"}, path
        name = module_name(path)
        assert all(t.startswith(("instruments", "utils")) for t in imports_of(path, name)), path
    for path in (PACKAGE / "data" / "simulate").rglob("*.py"):
        assert not third_party_imports(path) & {"torch", "pyro"}, path
    assert "pyro" not in third_party_imports(PACKAGE / "models" / "unet.py")
    private = re.compile(r"_unconstrained|[\"']locs\.|[\"']scales\.|\.locs\b|\.scales\b|_get_loc_and_scale")
    users = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if private.search(p.read_text()))
    assert users == ["models/guides.py"]
