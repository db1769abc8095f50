"""The package's import graph: no cycles, and the layers the design promises.

Imports are read from the source (module level and inside functions alike; ``if
TYPE_CHECKING:`` blocks excluded, since they never run), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rtl4ml"


def module_name(path: Path) -> str:
    parts = ["rtl4ml", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(name: str) -> set[str]:
    """The rtl4ml modules ``name`` imports (a name imported from a package that is itself a
    submodule counts as that submodule)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for c in child.orelse:
                    visit(c)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("rtl4ml"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                if not mod.startswith("rtl4ml"):
                    continue
                subs = [f"{mod}.{a.name}" for a in child.names if f"{mod}.{a.name}" in MODULES]
                found.update(subs or [mod])
                if len(subs) < len(child.names):
                    found.add(mod)
            visit(child)
    visit(ast.parse(path.read_text()))
    found.discard(name)
    return {m for m in found if m in MODULES}


GRAPH = {m: imports_of(m) for m in MODULES}


def find_cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := dfs(d)):
                return c
        stack.pop()
        state[m] = 2
        return None
    for m in sorted(GRAPH):
        if m not in state and (c := dfs(m)):
            return c
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_imports_inside_functions(tmp_path, monkeypatch):
    """The checker itself must be able to fail: a lazy import that closes a cycle is found."""
    assert "rtl4ml.graph.ops.dense" in GRAPH["rtl4ml.graph.ops"]
    monkeypatch.setitem(GRAPH, "rtl4ml.fixed", GRAPH["rtl4ml.fixed"] | {"rtl4ml.design"})
    assert find_cycle() is not None


def _reaches(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for d in GRAPH[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_cmvm_is_a_leaf_package_on_fixed_only():
    for m in MODULES:
        if m.startswith("rtl4ml.cmvm"):
            outside = {d for d in GRAPH[m] if not d.startswith("rtl4ml.cmvm")}
            assert outside <= {"rtl4ml.fixed"}, f"{m} imports {sorted(outside)}"


@pytest.mark.parametrize("a,b", [("rtl4ml.frontends.torch", "rtl4ml.nn"), ("rtl4ml.nn", "rtl4ml.frontends.torch")])
def test_the_torch_frontend_and_qat_do_not_import_each_other(a, b):
    users = [m for m in MODULES if m == a or m.startswith(a + ".")]
    for m in users:
        bad = {d for d in GRAPH[m] if d == b or d.startswith(b + ".")}
        assert not bad, f"{m} imports {sorted(bad)}"


def test_backends_know_no_graph_op_and_ops_no_backend():
    for m in MODULES:
        if m.startswith(("rtl4ml.backends", "rtl4ml.netlist", "rtl4ml.verify")):
            assert not any(d.startswith("rtl4ml.graph") for d in _reaches(m)), m
        if m.startswith("rtl4ml.graph"):
            assert not any(d.startswith(("rtl4ml.backends", "rtl4ml.verify")) for d in _reaches(m)), m
