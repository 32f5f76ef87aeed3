"""natgrad's modules import one another one way: no circle, counting imports inside functions and for typing."""

from __future__ import annotations

import ast
from pathlib import Path

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


def test_construction_flows_from_spaces_to_loading():
    """spaces → encoders and distributions → policy → sampler → algorithms → loading, never back."""
    graph = module_graph()
    order = ["natgrad.spaces", "natgrad.encoders", "natgrad.policy", "natgrad.sampler", "natgrad.algos.base",
             "natgrad.loading"]
    for lower, upper in zip(order, order[1:]):
        assert reaches(graph, upper, lower) and not reaches(graph, lower, upper), (lower, upper)
    assert reaches(graph, "natgrad.policy", "natgrad.distributions")
    assert not reaches(graph, "natgrad.checkpoint", "natgrad.algos.base")  # the file format knows no algorithm


def test_the_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
