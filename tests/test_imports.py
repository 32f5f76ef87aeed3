"""natgrad's modules import one another one way: no circle, counting imports inside functions and for typing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import natgrad

SRC = Path(natgrad.__file__).parent


def module_graph() -> dict[str, set[str]]:
    """Every natgrad module and the natgrad modules it imports, wherever the import statement stands. The package
    itself (``natgrad/__init__``, which only re-exports) is left out: ``from natgrad import x`` counts as x."""
    files = {".".join(("natgrad", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__"): p
             for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "natgrad":
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in files and d not in (name, "natgrad")}
    graph.pop("natgrad")
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def reaches(graph: dict[str, set[str]], a: str, b: str) -> bool:
    seen, todo = set(), [a]
    while todo:
        v = todo.pop()
        if v == b:
            return True
        if v not in seen:
            seen.add(v)
            todo.extend(graph[v])
    return False


def test_no_module_imports_itself_round_a_circle():
    assert circles(module_graph()) == []


# natgrad's layers, lowest first: a module imports from its own package and from lower layers only (the top-level
# modules are named by their own names; natgrad/__init__, which only re-exports, is left out)
LAYERS = [
    {"errors", "version", "config", "presets"},
    {"objectives"},
    {"policy"},
    {"natural", "rollouts", "wrappers"},
    {"algos"},
    {"runs"},
    {"lm"},
    {"tools", "lab"},
    {"cli", "__main__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
SIDE_BY_SIDE = {frozenset({"rollouts", "wrappers"}), frozenset({"cli", "__main__"})}  # one room in two names


def part_of(module: str) -> str:
    """The subpackage (or top-level module) a natgrad module belongs to: ``natgrad.natural.cg`` → ``natural``."""
    return module.split(".")[1]


def test_every_module_imports_only_downward():
    graph = module_graph()
    assert set(map(part_of, graph)) <= set(RANK), set(map(part_of, graph)) - set(RANK)  # every module has a layer
    upward = []
    for module, deps in graph.items():
        for dep in deps:
            a, b = part_of(module), part_of(dep)
            beside = RANK[a] == RANK[b] and a != b and RANK[a] > 0 and frozenset({a, b}) not in SIDE_BY_SIDE
            if RANK[b] > RANK[a] or beside:
                upward.append(f"{module} -> {dep}")
    assert upward == []


def test_the_objectives_are_pure_tensor_functions():
    assert {m: deps for m, deps in module_graph().items() if part_of(m) == "objectives" and deps} == {}


def test_the_check_finds_an_upward_import(monkeypatch):
    graph = {"natgrad.policy.spaces": {"natgrad.algos.base"}, "natgrad.algos.base": set()}
    monkeypatch.setattr(__import__(__name__), "module_graph", lambda: graph)
    with pytest.raises(AssertionError, match="natgrad.policy.spaces -> natgrad.algos.base"):
        test_every_module_imports_only_downward()


def test_the_file_format_knows_no_algorithm():
    assert not reaches(module_graph(), "natgrad.algos.checkpoint", "natgrad.algos.base")


def test_the_tools_package_imports_nothing_heavy():
    code = ("import sys, natgrad.tools; heavy = {'matplotlib', 'optuna', 'ray'} & set(sys.modules); "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
