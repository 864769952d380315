"""The report modules import each other without a cycle, counting imports inside functions too
(a deferred import hides a cycle from Python but not from a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

import mmerbench.report

REPORT = Path(mmerbench.report.__file__).parent


def _report_imports() -> dict[str, set[str]]:
    names = {p.stem for p in REPORT.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        deps: set[str] = set()
        for node in ast.walk(ast.parse((REPORT / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            deps |= {m.rsplit(".", 1)[1] for m in mods if m.startswith("mmerbench.report.")}
        graph[name] = deps & names - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_report_modules_have_no_import_cycle():
    graph = _report_imports()
    assert {"papers", "leaderboard", "synthetic_label"} <= set(graph)
    assert "papers" not in graph["leaderboard"] and "leaderboard" not in graph["papers"]
    assert _cycle(graph) is None
