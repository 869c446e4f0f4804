"""The package's shape (docs/architecture.md): no import cycles, and every
layer imports only the layers below it.  Imports are read from the source
(module level and inside functions alike; ``if TYPE_CHECKING:`` blocks are
annotations, not imports)."""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Set

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kcoretool"

#: Layer of each top-level part, lowest first; a module may import its own
#: layer and the ones below.  ``cli`` talks only to the API.
LAYERS = {
    "kcoretool.errors": 0,
    "kcoretool.x86_64": 0,
    "kcoretool._drgn_required": 0,
    "kcoretool._interrupts": 0,
    "kcoretool._outfile": 0,
    "kcoretool._args": 0,
    "kcoretool.source": 1,
    "kcoretool.debuginfo": 2,
    "kcoretool.kernel": 3,
    "kcoretool.model": 4,
    "kcoretool.reader": 5,
    "kcoretool.api": 6,
    "kcoretool.fleet": 7,  # many dumps: the API's Kernel per dump, scheduled
    "kcoretool.cli": 8,
    "kcoretool.helpers": 8,
    "kcoretool.__main__": 9,
    "kcoretool.drgn_plugin": 9,
}


def _modules() -> Dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, known: Set[str]) -> Set[str]:
    found: Set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in known}


def import_graph() -> Dict[str, Set[str]]:
    mods = _modules()
    known = set(mods)
    return {
        name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", known) - {name}
        for name, path in mods.items()
    }


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _layer(module: str) -> int:
    for prefix, n in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return n
    assert module == "kcoretool", f"{module}: in no layer; add it to LAYERS and docs/architecture.md"
    return 0


def test_the_graph_sees_imports():
    g = import_graph()
    # A module-level import, a function-level one, and a relative one.
    assert "kcoretool.source.core" in g["kcoretool.source.elfcore"]
    assert "kcoretool.api" in g["kcoretool.cli"]
    assert "kcoretool.errors" in g["kcoretool.source.core"]


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_only_downwards():
    bad = []
    for module, targets in import_graph().items():
        for t in targets:
            if _layer(t) > _layer(module):
                bad.append(f"{module} imports {t}")
    assert bad == []


def test_the_cli_talks_only_to_the_api():
    # _outfile: the output files the CLI's -o and the model's snapshot save share
    # fleet: the public API of many dumps (kcoretool.fleet's own names)
    allowed = ("kcoretool", "kcoretool.api", "kcoretool.errors", "kcoretool._outfile", "kcoretool.fleet")
    bad = []
    for module, targets in import_graph().items():
        if module.startswith("kcoretool.cli"):
            bad += [f"{module} imports {t}" for t in targets
                    if t not in allowed and not t.startswith("kcoretool.cli")]
    assert bad == []


def test_lazy_names_are_not_submodules():
    """A lazy package (PEP 562) loses a name to a submodule of the same name
    once that submodule is imported: ``kcoretool.model.whatis`` would become
    the module, not the function."""
    import importlib

    for pkg in ("kcoretool.kernel", "kcoretool.model"):
        home = importlib.import_module(pkg)._HOME
        clash = [n for n in home if (PACKAGE / pkg.split(".")[1] / f"{n}.py").exists()]
        assert clash == [], pkg
