"""The package layers and the import graph (docs/architecture.md).

Dependencies run one way:

    stores  <-  connectors, graphs, trainer  <-  agent  <-  bench, tests

A module may import its own package and any package of a lower layer; the three
middle packages do not import each other; nothing in the product imports bench/ or
tests/. Every import statement counts, also those inside functions (a lazy import
is still a dependency). And no project module imports itself back through others.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYER = {"stores": 0, "connectors": 1, "graphs": 1, "trainer": 1, "agent": 2}
UNRESTRICTED = ("bench", "tests")  # may import any layer; nothing in LAYER may import them
PROJECT = (*LAYER, *UNRESTRICTED)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files(root: Path) -> dict[str, Path]:
    """Every module of the project packages, by dotted name."""
    return {module_name(root, p): p for top in PROJECT if (root / top).is_dir() for p in sorted((root / top).rglob("*.py"))}


def imports(root: Path, path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import statement in the file, relative ones resolved;
    names are those of `from module import a, b` (each may itself be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = module_name(root, path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out.append((node.lineno, base, tuple(a.name for a in node.names if a.name != "*")))
    return out


def layer_violations(root: Path) -> list[str]:
    """'path:line imports module' for each import that runs up or sideways the layers."""
    bad = []
    for name, path in project_files(root).items():
        own = name.split(".")[0]
        if own not in LAYER:
            continue
        for line, mod, _ in imports(root, path):
            top = mod.split(".")[0]
            up = top in LAYER and (LAYER[top] > LAYER[own] or (LAYER[top] == LAYER[own] and top != own))
            if up or top in UNRESTRICTED:
                bad.append(f"{path.relative_to(root)}:{line} imports {mod}")
    return sorted(bad)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Project module -> the project modules it imports. A package's __init__ is not counted
    as imported by its submodules (Python runs it first, but that is not a dependency)."""
    files = project_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for _, mod, names in imports(root, path):
            for target in [f"{mod}.{n}" for n in names] or [mod]:
                while target and target not in files:  # `from a.b import name`: the module a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# ----------------------------------------------------------------------------- the project
def test_no_import_runs_up_or_sideways_the_layers():
    assert layer_violations(ROOT) == []


def test_no_import_cycles_among_project_modules():
    graph = import_graph(ROOT)
    assert len(graph) > 50 and "agent.cli.context" in graph["agent.cli.facts"]  # the walk sees the project
    assert cycles(graph) == []


def test_ruff_passes_with_the_project_settings():
    """ruff (the dev extra) with pyproject's [tool.ruff] settings, over the whole repository."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed (it is in the dev extra: pip install -e '.[dev]')"
    r = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


# ----------------------------------------------------------------------------- the checks themselves
def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_the_layer_check_catches_upward_sideways_and_bench_imports(tmp_path: Path):
    root = _tree(tmp_path, {
        "stores/__init__.py": "",
        "stores/vector.py": "def f():\n    from agent.config import Config\n",  # upward, even lazily
        "graphs/__init__.py": "",
        "graphs/chat.py": "import trainer.runs\nfrom stores import vector\nfrom . import ingest\n",  # sideways
        "graphs/ingest.py": "from .chat import x\n",
        "agent/__init__.py": "",
        "agent/cli.py": "from bench.harness import runner\nfrom graphs.chat import ChatAgent\n",
        "bench/__init__.py": "from agent.cli import cli\n",  # bench may import anything
    })
    assert layer_violations(root) == [
        "agent/cli.py:1 imports bench.harness",
        "graphs/chat.py:1 imports trainer.runs",
        "stores/vector.py:2 imports agent.config",
    ]


def test_the_cycle_check_finds_a_cycle_through_a_relative_import(tmp_path: Path):
    root = _tree(tmp_path, {
        "agent/__init__.py": "from agent.cli import main\n",
        "agent/cli.py": "from agent.context import cli\n",
        "agent/context.py": "def f():\n    from . import commands\n",
        "agent/commands.py": "from agent.context import cli\n",
    })
    assert cycles(import_graph(root)) == [["agent.commands", "agent.context"]]
