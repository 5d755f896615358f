"""The architecture (docs/architecture.md), checked on every import of src/assay, lazy ones included:
no module cycles, no package cycles, no import that points up a layer, and a feature reaches
another feature only through that feature's public package (its `__init__`), never its modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Each top-level module or package of assay, by layer (lowest first).
LAYERS = {
    "foundation": {
        "checkpoint_io", "cluster", "config", "configs", "devices", "errors", "io", "plugins", "progress", "rng",
        "sampling", "stats", "tracking", "version",
    },
    "core": {"data", "embeddings", "generate", "llm", "masking", "model", "pipeline", "train"},
    "feature": {"correct", "experiments", "judges", "music", "serve", "synth"},
    "app": {"<root>", "__main__", "cli"},
}  # fmt: skip
RANK = {name: rank for rank, members in enumerate(LAYERS.values()) for name in members}


def module_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package modules it imports (any import statement, at any depth of the code)."""
    pkg = root.name
    files = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    exported = {name: _bound_names(f) for name, f in files.items() if f.name == "__init__.py"}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, f in files.items():
        base = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level:
                    mod = ".".join(base[: len(base) - node.level + 1] + ([mod] if mod else []))
                # `from pkg import sub` depends on the submodule; `from pkg import name` on the package
                # (also when `name` is a submodule the package re-exports a function of: its API)
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    targets.add(sub if sub in files and a.name not in exported.get(mod, ()) else mod)
        resolved = {resolve(t) for t in targets if t == pkg or t.startswith(pkg + ".")}
        # a package importing its own children is how a package is assembled, not a dependency
        graph[name] = {t for t in resolved if t and t != name and not t.startswith(name + ".")}
    return graph


def _bound_names(init: Path) -> set[str]:
    """Names a package's __init__ binds at its top level (its public API)."""
    names: set[str] = set()
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def violations(root: Path) -> dict[str, list[str]]:
    """Everything wrong with the import structure of the package at `root`, by rule."""
    graph = module_graph(root)
    packages: dict[str, set[str]] = {}
    for m, targets in graph.items():
        for t in targets:
            if top(m) != top(t) and "<root>" not in (top(m), top(t)):
                packages.setdefault(top(m), set()).add(top(t))
    found = {
        "module cycles": [" <-> ".join(c) for c in cycles(graph)],
        "package cycles": [" <-> ".join(c) for c in cycles(packages)],
        "unknown packages": sorted({top(m) for m in graph} - set(RANK)),
        "imports up a layer": [],
        "imports of another feature's internals": [],
    }
    for m, targets in sorted(graph.items()):
        for t in sorted(targets):
            a, b = top(m), top(t)
            if a not in RANK or b not in RANK or a == b:
                continue
            if RANK[b] > RANK[a]:
                found["imports up a layer"].append(f"{m} -> {t}")
            elif RANK[a] == RANK[b] == RANK["judges"] and t != f"{root.name}.{b}":
                found["imports of another feature's internals"].append(f"{m} -> {t}")
    return found


def test_assay_has_no_cycles_and_imports_point_down():
    found = violations(ROOT / "src" / "assay")
    assert found == {key: [] for key in found}, found


def test_the_check_finds_each_kind_of_violation(tmp_path):
    """The scan would catch what it guards against (a tree that breaks every rule once)."""
    pkg = tmp_path / "assay"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "io.py": "def f():\n    from assay.train import loop  # lazy, and up a layer\n",
        "train/__init__.py": "",
        "train/loop.py": "from assay.train.tasks import Task\n",
        "train/tasks.py": "from .loop import x\n",  # relative import closing a module cycle
        "data/__init__.py": "from assay.train.loop import y\n",
        "model/__init__.py": "",
        "model/m.py": "import assay.data\n",
        "synth/__init__.py": "",
        "synth/step.py": "from assay.music.render import render\nfrom assay.music import validity\n",
        "music/__init__.py": "",
        "music/render.py": "from assay import errors\n",
        "weird/__init__.py": "",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    (pkg / "train/__init__.py").write_text("from assay.data import z\n")  # train <-> data
    found = violations(pkg)
    assert found["module cycles"] == ["assay.train.loop <-> assay.train.tasks"]
    assert found["package cycles"] == ["data <-> train"]
    assert found["unknown packages"] == ["weird"]
    assert found["imports up a layer"] == ["assay.io -> assay.train.loop"]  # `from assay import errors`: no
    assert found["imports of another feature's internals"] == ["assay.synth.step -> assay.music.render"]


@pytest.mark.parametrize("layer", list(LAYERS))
def test_every_top_level_name_of_assay_is_in_one_layer(layer):
    present = {p.stem if p.is_file() else p.name for p in (ROOT / "src/assay").iterdir() if p.name != "__pycache__"}
    present = {"<root>" if n == "__init__" else n for n in present if not n.endswith(".egg-info")}
    assert LAYERS[layer] <= present | {"<root>"}, f"{layer}: {sorted(LAYERS[layer] - present)} no longer exist"
