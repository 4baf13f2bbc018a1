"""The import graph of voicebot.server, voicebot.eval and voicebot.protocol has no cycles.

An AST walk over every module of ``voicebot`` collects module-level imports
(``if TYPE_CHECKING:`` blocks included: a cycle there is still a cycle in the
design); imports inside functions are deliberate lazy loads and are left out.
Any cycle through a module of the checked packages fails. Each server module
also imports on its own in a fresh interpreter, so no module works only
because another one happened to be imported first.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "voicebot"
CHECKED = ("voicebot.server", "voicebot.eval", "voicebot.protocol")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports at module level (``if`` blocks included, functions not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: module_imports(path, modules) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_server_eval_protocol() -> None:
    graph = import_graph()
    assert "voicebot.server.runtime" in graph and graph["voicebot.server.hub"], "the walk found no imports"
    bad = [c for c in cycles(graph) if any(m.startswith(CHECKED) for m in c)]
    assert bad == [], f"import cycles: {bad}"


def test_runtime_is_below_the_endpoints() -> None:
    graph = import_graph()
    endpoints = {"voicebot.server.app", "voicebot.server.native", "voicebot.server.twilio", "voicebot.server.agent",
                 "voicebot.server.calls"}
    assert not graph["voicebot.server.runtime"] & endpoints
    assert not any(m.startswith("voicebot.server") for m in graph["voicebot.protocol.events"])
    assert not [m for m, deps in graph.items() if "voicebot.server.app" in deps and m.startswith("voicebot.server")]


@pytest.mark.parametrize("module", sorted(
    module_name(p) for p in (PACKAGE / "server").glob("*.py")) + sorted(
    module_name(p) for p in (PACKAGE / "protocol").glob("*.py")))
def test_each_module_imports_alone(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
