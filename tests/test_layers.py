"""The package layers, the import graph and the shape of the product (docs/architecture.md).

Dependencies run one way:

    stores  <-  connectors, graphs, trainer  <-  agent  <-  bench, tests

A module may import its own package and any package of a lower layer; the three
middle packages do not import each other; nothing in the product imports bench/ or
tests/. Every import counts: those inside functions (a lazy import is still a
dependency) and those by string (`importlib.import_module("x.y")`, `__import__("x")`,
an f-string whose constant prefix names a package). The product never edits `sys.path`
(that is how an upward arrow hides). No project module imports itself back through
others, and no folder does either: within each package, its sub-packages and plain
modules form no circle. The faces (FACES) do not import each other; only COMPOSERS
put several together. No function in SHORT_FUNCTIONS is longer than MAX_FUNCTION_LINES.
"""
from __future__ import annotations

import ast
import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYER = {"stores": 0, "connectors": 1, "graphs": 1, "trainer": 1, "agent": 2}
UNRESTRICTED = ("bench", "tests")  # may import any layer; nothing in LAYER may import them
PROJECT = (*LAYER, *UNRESTRICTED)

# The faces a person or a client talks to, each with the modules that make it up (a package,
# or a plain module until it becomes one: a name covers the module and everything under it).
# Update this list when a face moves; nothing else in this file names a face.
FACES: dict[str, tuple[str, ...]] = {
    "api": ("agent.api", "agent.server"),
    "console": ("agent.console",),
    "mcp": ("agent.mcp", "agent.mcp_server"),
    "cli": ("agent.cli",),
}
COMPOSERS = ("agent.serve",)  # the one module that mounts and runs several faces together

SHORT_FUNCTIONS = ("agent", "graphs", "stores", "connectors")  # the trainer's one loop may stay one loop
MAX_FUNCTION_LINES = 100  # a nested function counts in its parent's length

IMPORT_FUNCTIONS = ("import_module", "__import__")  # importlib.import_module, import_module, __import__
SYS_PATH_EDITS = ("insert", "append", "extend")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files(root: Path) -> dict[str, Path]:
    """Every module of the project packages, by dotted name."""
    tops = [root / top for top in PROJECT if (root / top).is_dir()]
    return {module_name(root, p): p for top in tops for p in sorted(top.rglob("*.py"))}


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _resolve(package: list[str], level: int, module: str) -> str:
    """A relative import's absolute name (`from ..x import y` in package a.b -> a.x)."""
    if not level:
        return module
    return ".".join(package[: len(package) - level + 1] + ([module] if module else []))


def _string_module(node: ast.expr, package: list[str]) -> str | None:
    """The module a string names: a literal ("a.b", ".b" relative to the package), or the
    whole dotted names of an f-string's constant prefix (f"bench.harness.{m}" -> bench.harness)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text, whole = node.value, True
    elif isinstance(node, ast.JoinedStr):
        text, whole = "", True
        for part in node.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                whole = False
                break
            text += part.value
    else:
        return None
    level = len(text) - len(text.lstrip("."))
    name = text[level:] if whole else text[level:].rpartition(".")[0]  # f"a.b{x}": only `a` is certain
    if not (name or level) or (name and not all(p.isidentifier() for p in name.split("."))):
        return None
    return _resolve(package, level, name)


def _strings_bound(scope: ast.AST) -> dict[str, list[ast.expr]]:
    """name -> the strings assigned to it in this scope (not in functions nested in it), so that
    `name = f"bench.harness.{m}"; import_module(name)` counts like `import_module(f"bench...")`."""
    bound: dict[str, list[ast.expr]] = {}
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Constant, ast.JoinedStr)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    bound.setdefault(target.id, []).append(node.value)
        todo.extend(ast.iter_child_nodes(node))
    return bound


def _walk_scoped(node: ast.AST, scopes: list[dict[str, list[ast.expr]]]) -> Iterator[tuple[ast.AST, list]]:
    """Every node under `node`, with the string bindings of its enclosing scopes (innermost last)."""
    for child in ast.iter_child_nodes(node):
        yield child, scopes
        function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
        yield from _walk_scoped(child, [*scopes, _strings_bound(child)] if function else scopes)


def _import_call_args(call: ast.Call, scopes: list[dict[str, list[ast.expr]]]) -> list[ast.expr]:
    """The module expressions an import_module()/__import__() call may be given (a name: its strings)."""
    f = call.func
    if (f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None) not in IMPORT_FUNCTIONS:
        return []
    arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
    if isinstance(arg, ast.Name):
        return next((s[arg.id] for s in reversed(scopes) if arg.id in s), [])
    return [arg] if arg is not None else []


def imports(root: Path, path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import in the file, relative ones resolved; names are those
    of `from module import a, b` (each may itself be a module). Imports by string count too."""
    tree = _parse(path)
    here = module_name(root, path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, str, tuple[str, ...]]] = []
    for node, scopes in _walk_scoped(tree, [_strings_bound(tree)]):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.level, node.module or "")
            out.append((node.lineno, base, tuple(a.name for a in node.names if a.name != "*")))
        elif isinstance(node, ast.Call):
            for arg in _import_call_args(node, scopes):
                mod = _string_module(arg, package)
                if mod:
                    out.append((node.lineno, mod, ()))
    return sorted(out)


def _is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def sys_path_edits(path: Path) -> list[int]:
    """Lines that change sys.path: sys.path.insert/append/extend(...), sys.path = / += / [i:j] = ..."""
    lines = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SYS_PATH_EDITS:
            if _is_sys_path(node.func.value):
                lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if _is_sys_path(t) or (isinstance(t, ast.Subscript) and _is_sys_path(t.value)):
                    lines.append(node.lineno)
    return sorted(lines)


def _by_place(lines: list[str]) -> list[str]:
    """'path:line ...' strings in file order (line 50 before line 402)."""
    def key(s: str) -> tuple[str, int, str]:
        path, _, rest = s.partition(":")
        line, _, what = rest.partition(" ")
        return (path, int(line) if line.isdigit() else 0, what)

    return sorted(lines, key=key)


def layer_violations(root: Path) -> list[str]:
    """'path:line imports module' for each import that runs up or sideways the layers,
    'path:line edits sys.path' for each change of the import path in the product."""
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
        bad += [f"{path.relative_to(root)}:{line} edits sys.path" for line in sys_path_edits(path)]
    return _by_place(bad)


def _targets(files: dict[str, Path], mod: str, names: tuple[str, ...]) -> set[str]:
    """The project modules an import names: `from a.b import c` is a.b.c if that is a module, else a.b."""
    found = set()
    for target in [f"{mod}.{n}" for n in names] or [mod]:
        while target and target not in files:
            target = target.rpartition(".")[0]
        if target:
            found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Project module -> the project modules it imports. A package's __init__ is not counted
    as imported by its submodules (Python runs it first, but that is not a dependency)."""
    files = project_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for _, mod, names in imports(root, path):
            deps |= _targets(files, mod, names)
        deps.discard(name)
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
        for w in sorted(graph.get(v, ())):
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


def folder_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Circles among folders: for each product package, its children (a sub-package with all
    that lies under it, or a plain module; the package's own __init__ is a node of its own)
    as nodes, an edge where a module of one imports a module of another."""
    packages = {m.rpartition(".")[0] for m in graph if "." in m and m.split(".")[0] in LAYER}
    found = []
    for pkg in sorted(packages):
        def child(m: str) -> str | None:
            return m if m == pkg else f"{pkg}.{m[len(pkg) + 1:].split('.')[0]}" if m.startswith(pkg + ".") else None

        folders: dict[str, set[str]] = {}
        for m, deps in graph.items():
            a = child(m)
            if a is not None:
                folders.setdefault(a, set()).update(b for b in map(child, deps) if b is not None and b != a)
        found += cycles(folders)
    return sorted(found)


def face_of(module: str) -> str | None:
    """The face a module belongs to, if any."""
    for face, names in FACES.items():
        if any(module == n or module.startswith(n + ".") for n in names):
            return face
    return None


def face_violations(root: Path) -> list[str]:
    """'path:line (face) imports module (other face)' for each import of one face by another,
    and 'path: composes faces a, b' for a module outside COMPOSERS that imports several."""
    files = project_files(root)
    bad = []
    for name, path in files.items():
        if name.split(".")[0] not in LAYER:
            continue
        mine, used = face_of(name), set()
        for line, mod, names in imports(root, path):
            for target in sorted(_targets(files, mod, names)):
                theirs = face_of(target)
                if theirs and mine and theirs != mine:
                    bad.append(f"{path.relative_to(root)}:{line} ({mine}) imports {target} ({theirs})")
                elif theirs:
                    used.add(theirs)
        if mine is None and name not in COMPOSERS and len(used) > 1:
            bad.append(f"{path.relative_to(root)}: composes faces {', '.join(sorted(used))}")
    return _by_place(bad)


def long_functions(root: Path, packages: tuple[str, ...] = SHORT_FUNCTIONS,
                   limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'path:line name: N lines' for each function or method longer than `limit` lines
    (end_lineno - lineno + 1; a nested function counts in its parent, which is the one named)."""
    bad = []
    for top in packages:
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else ():
            todo: list[tuple[ast.AST, str]] = [(_parse(path), "")]
            while todo:
                node, prefix = todo.pop()
                for sub in ast.iter_child_nodes(node):
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        n = (sub.end_lineno or sub.lineno) - sub.lineno + 1
                        if n > limit:
                            bad.append((str(path.relative_to(root)), sub.lineno, f"{prefix}{sub.name}: {n} lines"))
                    else:
                        todo.append((sub, f"{prefix}{sub.name}." if isinstance(sub, ast.ClassDef) else prefix))
    return [f"{p}:{line} {what}" for p, line, what in sorted(bad)]


# ----------------------------------------------------------------------------- the project
def test_no_import_runs_up_or_sideways_the_layers():
    assert layer_violations(ROOT) == []


def test_no_import_cycles_among_project_modules():
    graph = import_graph(ROOT)
    assert len(graph) > 50 and "agent.cli.context" in graph["agent.cli.facts"]  # the walk sees the project
    assert cycles(graph) == []


def test_no_circles_among_folders():
    graph = import_graph(ROOT)
    assert {"agent.cli", "agent.config"} <= {m.rpartition(".")[0] for m in graph} | set(graph)
    found = folder_cycles(graph)
    print("\n".join("circle among " + ", ".join(c) for c in found))
    assert found == []


def test_no_face_imports_another_face():
    assert any(face_of(m) for m in project_files(ROOT)), "FACES names no module of the tree: update it"
    bad = face_violations(ROOT)
    print("\n".join(bad))
    assert bad == []


def test_no_function_is_longer_than_the_limit():
    bad = long_functions(ROOT)
    print("\n".join(bad))
    assert bad == [], f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(bad)


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


def test_the_layer_check_catches_imports_by_string_and_sys_path_edits(tmp_path: Path):
    root = _tree(tmp_path, {
        "stores/__init__.py": "",
        "stores/vector.py": ("import importlib\n"
                             "importlib.import_module('agent.config')\n"
                             "importlib.import_module('json')\n"),
        "graphs/__init__.py": "",
        "graphs/chat.py": ("from importlib import import_module\n"
                           "def f(kind):\n"
                           "    import_module('.ingest', __package__)\n"  # its own package: fine
                           "    import_module(f'{kind}.x')\n"  # no constant prefix: nothing to check
                           "    return __import__('trainer.runs')\n"),
        "graphs/ingest.py": "",
        "agent/__init__.py": "",
        "agent/cli.py": ("import importlib, sys\n"
                         "def harness(module):\n"
                         "    name = f'bench.harness.{module}'\n"  # by a name bound to an f-string
                         "    sys.path.insert(0, '/checkout')\n"
                         "    return importlib.import_module(name)\n"
                         "def plugin(m):\n"
                         "    return importlib.import_module(f'bench.{m}.cli')\n"),
        "agent/app.py": "import sys\nsys.path.append('..')\nsys.path += ['x']\n",
        "bench/__init__.py": "import sys\nsys.path.insert(0, '.')\n",  # bench may do what it likes
    })
    assert layer_violations(root) == [
        "agent/app.py:2 edits sys.path",
        "agent/app.py:3 edits sys.path",
        "agent/cli.py:4 edits sys.path",
        "agent/cli.py:5 imports bench.harness",
        "agent/cli.py:7 imports bench",
        "graphs/chat.py:5 imports trainer.runs",
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


def test_the_cycle_check_finds_a_cycle_through_an_import_by_string(tmp_path: Path):
    root = _tree(tmp_path, {
        "agent/__init__.py": "",
        "agent/a.py": "from agent import b\n",
        "agent/b.py": "import importlib\ndef f():\n    return importlib.import_module('agent.a')\n",
    })
    assert cycles(import_graph(root)) == [["agent.a", "agent.b"]]


def test_the_folder_check_finds_circles_the_module_check_cannot_see(tmp_path: Path):
    root = _tree(tmp_path, {
        "agent/__init__.py": "",
        "agent/cli/__init__.py": "from agent.cli import chat, facts\n",
        "agent/cli/chat.py": "def serve():\n    from agent.server import app\n",
        "agent/cli/facts.py": "def revert_document(): ...\n",
        "agent/server.py": "from agent.console import build_console\n",
        "agent/console.py": "def f():\n    from agent.cli.facts import revert_document\n",
        "agent/config.py": "",  # imported by all, imports none: in no circle
        "agent/app.py": "from agent import config\n",
        "graphs/__init__.py": "",
        "graphs/keyed/__init__.py": "",
        "graphs/keyed/keys.py": "from graphs.ingest.state import State\n",
        "graphs/ingest/__init__.py": "",
        "graphs/ingest/state.py": "",
        "graphs/ingest/commit.py": "from graphs.keyed.slots import revise\n",
        "graphs/keyed/slots.py": "",
        "graphs/keyed/deep/__init__.py": "",  # one level down: keyed's own children
        "graphs/keyed/deep/a.py": "from graphs.keyed import names\n",
        "graphs/keyed/names.py": "from graphs.keyed.deep import b\n",
        "graphs/keyed/deep/b.py": "",
    })
    graph = import_graph(root)
    assert cycles(graph) == []
    assert folder_cycles(graph) == [
        ["agent.cli", "agent.console", "agent.server"],
        ["graphs.ingest", "graphs.keyed"],
        ["graphs.keyed.deep", "graphs.keyed.names"],
    ]


def test_the_face_check_catches_a_face_importing_another(tmp_path: Path):
    root = _tree(tmp_path, {
        "agent/__init__.py": "",
        "agent/service.py": "",
        "agent/cli/__init__.py": "",
        "agent/cli/chat.py": "from agent import service\ndef serve():\n    from agent.server import app\n",
        "agent/cli/run.py": "from agent.serve import serve\n",  # through the composer: fine
        "agent/server.py": "from agent.service import x\n",
        "agent/console/__init__.py": "from . import facts\n",
        "agent/console/facts.py": "from ..cli.chat import serve\n",
        "agent/mcp/__init__.py": "import importlib\nimportlib.import_module('agent.api.deps')\n",
        "agent/api/__init__.py": "",
        "agent/api/deps.py": "",
        "agent/mcp_server.py": "from agent.mcp import tools\n",  # the same face under its two names
        "agent/serve.py": "from agent import api, console, mcp\n",  # the composer
        "agent/app.py": "from agent.console import facts\nfrom agent.api import deps\n",
    })
    assert face_violations(root) == [
        "agent/app.py: composes faces api, console",
        "agent/cli/chat.py:3 (cli) imports agent.server (api)",
        "agent/console/facts.py:1 (console) imports agent.cli.chat (cli)",
        "agent/mcp/__init__.py:2 (mcp) imports agent.api.deps (api)",
    ]


def test_the_length_check_counts_nested_functions_in_their_parent(tmp_path: Path):
    def body(n: int, indent: str) -> str:
        return "".join(f"{indent}x = {i}\n" for i in range(n))

    root = _tree(tmp_path, {
        "graphs/__init__.py": "",
        "graphs/a.py": ("def short():\n" + body(99, "    ")  # 100 lines: the limit
                        + "def outer():\n" + body(50, "    ") + "    def inner():\n" + body(50, "        ")  # 102
                        + "class C:\n    @property\n    def m(self):\n" + body(100, "        ")  # 101
                        + "    async def n(self):\n" + body(10, "        ")),
        "trainer/loop.py": "def train():\n" + body(300, "    "),  # not a checked package
    })
    assert long_functions(root) == [
        "graphs/a.py:101 outer: 102 lines",
        "graphs/a.py:205 C.m: 101 lines",
    ]
