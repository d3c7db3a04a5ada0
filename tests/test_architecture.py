"""The package's shape, checked from the source: no import cycles, layers only point down.

Every module of ``vidsearch/`` and ``workers/`` is parsed (never imported). Each import, also one
inside a function, a ``try`` or ``if TYPE_CHECKING``, is resolved to the modules it loads: the named
module and the parent packages whose ``__init__`` a dotted import runs (not the importer's own
ancestors: they ran before it). ``from P import name`` where ``name`` is no submodule needs ``P``.
"""
from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vidsearch", "workers")

#: Lowest first. A module may import its own layer or a lower one, never a higher one. A key names a
#: module or a package (with everything in it); ``vidsearch`` alone is the top package's __init__.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("vidsearch", "vidsearch.errors")),
    ("pure/config", ("vidsearch.core", "vidsearch.settings")),
    ("adapter", ("vidsearch.media", "vidsearch.models")),
    ("catalog", ("vidsearch.index",)),
    ("service", ("vidsearch.ingest", "vidsearch.query", "vidsearch.retro", "vidsearch.ocr",
                 "vidsearch.evidence", "vidsearch.demo", "vidsearch.doctor")),
    ("top", ("vidsearch.cli", "vidsearch.web", "vidsearch.__main__", "workers")),
]
#: The top layer: the only modules that may import these.
TOP = ("vidsearch.cli", "vidsearch.web", "workers")
#: What pure core may import besides itself.
CORE_MAY_IMPORT = ("vidsearch", "vidsearch.errors")


@dataclass
class Graph:
    """Modules (name -> file) and their imports (name -> {target: first line})."""

    files: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, dict[str, int]] = field(default_factory=dict)
    root: Path | None = None

    def where(self, mod: str, target: str) -> str:
        """``file:line`` of the import (the module name for a synthetic graph)."""
        path = self.files.get(mod)
        return f"{path.relative_to(self.root) if path and self.root else mod}:{self.edges[mod][target]}"


# --- reading the source ----------------------------------------------------------------------


def discover(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Module name -> file for every ``.py`` under the given top-level packages."""
    found = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _chain(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _base(importer: str, is_pkg: bool, level: int, module: str | None) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if not level:
        return module or ""
    parts = importer.split(".") if is_pkg else importer.split(".")[:-1]
    parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def _targets(node: ast.AST, importer: str, is_pkg: bool, known) -> list[tuple[str, bool]]:
    """(module, explicit) pairs one import statement loads; implicit ones are the parents it runs."""
    out: list[tuple[str, bool]] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            out += [(m, m == alias.name) for m in _chain(alias.name)]
    elif isinstance(node, ast.ImportFrom):
        base = _base(importer, is_pkg, node.level, node.module)
        out += [(m, False) for m in _chain(base)]
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append((sub, True) if sub in known else (base, True))
    elif _is_import_module_call(node):
        out += [(m, m == node.args[0].value) for m in _chain(node.args[0].value)]
    return out


def _is_import_module_call(node: ast.AST) -> bool:
    """``importlib.import_module("literal")`` (a computed name cannot be followed)."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module" and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def _ours(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def module_imports(name: str, path: Path, known, packages=PACKAGES) -> dict[str, int]:
    """Target module -> first line, for every import of our packages anywhere in one file."""
    is_pkg = path.name == "__init__.py"
    ancestors = set(_chain(name)[:-1]) | ({name} if is_pkg else set())
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        for target, explicit in _targets(node, name, is_pkg, known):
            if not _ours(target, packages) or target == name:
                continue
            if target in ancestors and not explicit:
                continue  # the importer's own parents ran before it
            if target not in known and not explicit:
                continue  # a namespace-like parent with no __init__.py of its own
            found[target] = min(found.get(target, node.lineno), node.lineno)  # walk is not in line order
    return found


def build_graph(root: Path = ROOT, packages=PACKAGES) -> Graph:
    files = discover(root, packages)
    return Graph(files, {m: module_imports(m, p, files, packages) for m, p in files.items()}, root)


# --- the rules -------------------------------------------------------------------------------


def strong_groups(graph: Graph) -> list[list[str]]:
    """The groups of modules that import each other round a cycle (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1 or v in graph.edges.get(v, ()):
                groups.append(sorted(group))

    for v in sorted(graph.edges):
        if v not in index:
            visit(v)
    return sorted(groups)


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle path (first module repeated at the end) per group of modules in a cycle."""
    return [_cycle_in(graph, set(g)) for g in strong_groups(graph)]


def describe_cycles(graph: Graph) -> list[str]:
    """Per group: its modules, one cycle path, and every import that keeps the group together."""
    out = []
    for group, path in zip(strong_groups(graph), find_cycles(graph)):
        out.append(f"{len(group)} module(s) in a cycle, e.g. {' -> '.join(path)}; the imports inside it:")
        out += [f"    {graph.where(m, t)}: {m} imports {t}"
                for m in group for t in _by_line(graph, m) if t in group]
    return out


def _cycle_in(graph: Graph, group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module (breadth-first inside the group)."""
    start = min(group)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.edges.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start] + path[::-1][1:] + [start] if v != start else [start, start]
                if w in group and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # cannot happen for a strongly connected group


def _by_line(graph: Graph, mod: str) -> list[str]:
    """A module's targets in source order, less a package whose submodule the same line names."""
    targets = graph.edges.get(mod, {})
    return sorted((t for t in targets
                   if not any(u.startswith(t + ".") and targets[u] == targets[t] for u in targets)),
                  key=lambda t: (targets[t], t))


def layer_of(mod: str) -> tuple[int, str] | None:
    """(rank, layer name) of a module by its longest matching key in LAYERS; None if unplaced."""
    best = None
    for rank, (layer, keys) in enumerate(LAYERS):
        for key in keys:
            hit = mod == key or (key != "vidsearch" and mod.startswith(key + "."))
            if hit and (best is None or len(key) > best[0]):
                best = (len(key), rank, layer)
    return best and best[1:]


def _in(mod: str, keys) -> bool:
    return any(mod == k or mod.startswith(k + ".") for k in keys)


def unplaced(graph: Graph) -> list[str]:
    return sorted(m for m in graph.files if layer_of(m) is None)


def layer_violations(graph: Graph) -> list[str]:
    out = []
    for mod, targets in sorted(graph.edges.items()):
        mine = layer_of(mod)
        for target in _by_line(graph, mod):
            theirs = layer_of(target)
            if mine and theirs and theirs[0] > mine[0]:
                out.append(f"{graph.where(mod, target)}: {mod} ({mine[1]}) imports {target} ({theirs[1]})")
    return out


def top_layer_imports(graph: Graph) -> list[str]:
    """Imports of the CLI, the web layer or the workers from anywhere below them."""
    return [f"{graph.where(mod, t)}: {mod} imports {t}"
            for mod, targets in sorted(graph.edges.items()) if not _in(mod, TOP + ("vidsearch.__main__",))
            for t in _by_line(graph, mod) if _in(t, TOP)]


def core_impurities(graph: Graph) -> list[str]:
    return [f"{graph.where(mod, t)}: {mod} imports {t}"
            for mod, targets in sorted(graph.edges.items()) if _in(mod, ("vidsearch.core",))
            for t in _by_line(graph, mod) if not _in(t, ("vidsearch.core",)) and t not in CORE_MAY_IMPORT]


def _report(title: str, lines: list[str]) -> str:
    return title + "\n  " + "\n  ".join(lines)


# --- the tests on this tree ------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    g = build_graph()
    assert "vidsearch.cli" in g.files and "workers.app" in g.files, "the package was not found"
    return g


def test_no_import_cycles(graph):
    cycles = describe_cycles(graph)
    assert not cycles, _report("import cycles between modules (imports inside functions count):", cycles)


def test_nothing_below_the_top_imports_cli_web_or_workers(graph):
    bad = top_layer_imports(graph)
    assert not bad, _report("only the CLI, the web layer and the workers may import each other:", bad)


def test_core_imports_no_other_subpackage(graph):
    bad = core_impurities(graph)
    assert not bad, _report("vidsearch.core is pure (it may import only itself and vidsearch.errors):", bad)


def test_every_module_has_a_layer(graph):
    missing = unplaced(graph)
    assert not missing, _report("modules with no layer: add them to LAYERS in tests/test_architecture.py:",
                                missing)


def test_layers_only_point_down(graph):
    bad = layer_violations(graph)
    order = " < ".join(name for name, _ in LAYERS)
    assert not bad, _report(f"imports that point up the layers ({order}):", bad)


# --- the checker checks itself ---------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))


def test_the_checker_catches_a_cycle_and_an_upward_import():
    g = Graph(edges={
        "vidsearch.index.store": {"vidsearch.ingest.pipeline": 3, "vidsearch.errors": 2},
        "vidsearch.ingest.pipeline": {"vidsearch.query.engine": 5},
        "vidsearch.query.engine": {"vidsearch.index.store": 7},
        "vidsearch.core.plan": {"vidsearch.settings": 1, "vidsearch.errors": 1},
        "vidsearch.media.video": {"vidsearch.cli.base": 9},
        "vidsearch.cli.base": {"vidsearch.query.engine": 1, "workers.app": 2},
        "workers.app": {"vidsearch.ingest.pipeline": 4},
        "vidsearch.ocr.channel": {"vidsearch.ocr.channel": 1},
    })
    assert find_cycles(g) == [
        ["vidsearch.index.store", "vidsearch.ingest.pipeline", "vidsearch.query.engine", "vidsearch.index.store"],
        ["vidsearch.ocr.channel", "vidsearch.ocr.channel"],
    ]
    assert describe_cycles(g)[:2] == [
        "3 module(s) in a cycle, e.g. vidsearch.index.store -> vidsearch.ingest.pipeline -> vidsearch.query.engine"
        " -> vidsearch.index.store; the imports inside it:",
        "    vidsearch.index.store:3: vidsearch.index.store imports vidsearch.ingest.pipeline"]
    ups = layer_violations(g)
    assert ups == ["vidsearch.index.store:3: vidsearch.index.store (catalog) imports vidsearch.ingest.pipeline (service)",
                   "vidsearch.media.video:9: vidsearch.media.video (adapter) imports vidsearch.cli.base (top)"]
    assert top_layer_imports(g) == ["vidsearch.media.video:9: vidsearch.media.video imports vidsearch.cli.base"]
    assert core_impurities(g) == ["vidsearch.core.plan:1: vidsearch.core.plan imports vidsearch.settings"]
    assert layer_of("vidsearch") == (0, "base") and layer_of("vidsearch.web.app") == (5, "top")
    assert layer_of("vidsearch.ocr.channel") == (4, "service") and layer_of("vidsearch.new_module") is None
    g.files["vidsearch.new_module"] = Path("vidsearch/new_module.py")
    assert unplaced(g) == ["vidsearch.new_module"]
    g.edges["vidsearch.query.engine"] = {}
    assert find_cycles(g) == [["vidsearch.ocr.channel", "vidsearch.ocr.channel"]]


def test_the_checker_finds_a_longer_cycle_from_its_first_module():
    g = Graph(edges={"a": {"b": 1}, "b": {"c": 1, "a": 1}, "c": {"d": 1}, "d": {"b": 1}})
    assert find_cycles(g) == [["a", "b", "a"]]


def test_the_reader_resolves_every_import_form(tmp_path):
    _write(tmp_path, {
        "vidsearch/__init__.py": "",
        "vidsearch/errors.py": "",
        "vidsearch/core/__init__.py": "from . import plan\n",
        "vidsearch/core/plan.py": "from ..errors import UserError\nfrom .ranges import merge\n",
        "vidsearch/core/ranges.py": "def f():\n    import vidsearch.index.store as s\n",
        "vidsearch/index/__init__.py": "",
        "vidsearch/index/store.py": "try:\n    from vidsearch.query import engine\nexcept ImportError:\n    pass\n",
        "vidsearch/query/__init__.py": "from .engine import search\n",
        "vidsearch/query/engine.py": "import importlib\nimportlib.import_module('workers.app')\n",
        "workers/__init__.py": "",
        "workers/app.py": "from vidsearch import errors\nfrom vidsearch.core import *\n",
    })
    g = build_graph(tmp_path)
    assert g.edges == {
        "vidsearch": {},
        "vidsearch.errors": {},
        "vidsearch.core": {"vidsearch.core.plan": 1},
        "vidsearch.core.plan": {"vidsearch.errors": 1, "vidsearch.core.ranges": 2},
        "vidsearch.core.ranges": {"vidsearch.index": 2, "vidsearch.index.store": 2},
        "vidsearch.index": {},
        "vidsearch.index.store": {"vidsearch.query": 2, "vidsearch.query.engine": 2},
        "vidsearch.query": {"vidsearch.query.engine": 1},
        "vidsearch.query.engine": {"workers": 2, "workers.app": 2},
        "workers": {},
        "workers.app": {"vidsearch": 1, "vidsearch.errors": 1, "vidsearch.core": 2},
    }
    assert g.where("vidsearch.core.ranges", "vidsearch.index.store") == str(Path("vidsearch/core/ranges.py")) + ":2"
    assert find_cycles(g) == [["vidsearch.core", "vidsearch.core.plan", "vidsearch.core.ranges",
                               "vidsearch.index.store", "vidsearch.query.engine", "workers.app", "vidsearch.core"]]
    assert core_impurities(g) == [
        f"{Path('vidsearch/core/ranges.py')}:2: vidsearch.core.ranges imports vidsearch.index.store"]
    assert top_layer_imports(g) == [f"{Path('vidsearch/query/engine.py')}:2: vidsearch.query.engine imports workers.app"]
    _write(tmp_path, {"vidsearch/query/engine.py": "from vidsearch.index import store\n"})
    assert find_cycles(build_graph(tmp_path)) == [
        ["vidsearch.index.store", "vidsearch.query.engine", "vidsearch.index.store"]]


# -- SQL lives in the catalog --------------------------------------------------------------------
SQL_TEXT = re.compile(
    r"^\s*(SELECT\b[\s\S]*\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|CREATE\s+(OR\s+REPLACE\s+)?"
    r"(TABLE|VIEW|INDEX|TYPE)\b|ALTER\s+TABLE\b|DROP\s+(TABLE|VIEW)\b|ATTACH\b|COPY\b|SET\s+\w+\s*=|PRAGMA\b|USE\s+\w+\s*$)")  # keywords in capitals, as this code base writes SQL
SQL_HOME = "vidsearch/index/catalog.py"


def sql_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal (f-strings: their literal parts) that is SQL, docstrings aside."""
    tree = ast.parse(source)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    docstrings |= {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found = []
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
        else:
            continue
        if SQL_TEXT.match(text):
            found.append((node.lineno, " ".join(text.split())[:80]))
    return sorted(found)


def test_sql_only_in_the_catalog():
    bad = []
    for path in sorted(ROOT.glob("vidsearch/**/*.py")) + sorted(ROOT.glob("workers/**/*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == SQL_HOME:
            continue
        bad += [f"{rel}:{line}: {text}" for line, text in sql_strings(path.read_text())]
    assert not bad, "SQL statements outside " + SQL_HOME + " (make them catalog methods):\n    " + "\n    ".join(bad)


def test_sql_finder_finds_sql_and_skips_prose():
    src = ('"""SELECT a FROM b in a docstring is prose."""\n'
           'Q = "SELECT path FROM videos WHERE video_id = ?"\n'
           'def f(con, t):\n    con.execute(f"CREATE VIEW {t} AS SELECT 1")\n'
           'HELP = "Only SELECT-like statements run"\n'
           'S = "SET lock_configuration = true"\n')
    assert [line for line, _ in sql_strings(src)] == [2, 4, 6]


def _is_submodule(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # the parent is a module, not a package
        return False


def test_imported_names_exist():
    """``from vidsearch.x import name`` names something x defines or imports (a module moved or
    split leaves no stale import behind, even inside a function that no other test reaches)."""
    import importlib

    bad = []
    for path in sorted(ROOT.glob("vidsearch/**/*.py")) + sorted(ROOT.glob("workers/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] in ("vidsearch", "workers")):
                continue
            where = f"{path.relative_to(ROOT).as_posix()}:{node.lineno}"
            try:
                module = importlib.import_module(node.module)
            except ImportError as e:
                bad.append(f"{where}: {node.module}: {e}")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name) and not _is_submodule(f"{node.module}.{alias.name}"):
                    bad.append(f"{where}: {node.module} has no {alias.name}")
    assert not bad, "imports of names that do not exist:\n    " + "\n    ".join(bad)
