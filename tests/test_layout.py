"""The layout reads like the design: no import circle in the engine, the engine never imports
streamlit, and a page that shows no model loads no torch (tests/test_app.py checks that pages are
thin and never import torch themselves)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from engine.paths import REPO_ROOT

ENGINE = REPO_ROOT / "engine"
# The pages that sample models (the lab, the Learn path) load torch when they do; every other page
# must start without it (torch's import costs seconds of a cold start).
MODEL_PAGES = {"sampling_lab", "learn"}
PAGES = sorted(p for p in (REPO_ROOT / "pages").glob("*.py") if p.stem not in MODEL_PAGES)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _engine_imports(path: Path) -> set[str]:
    """Engine modules ``path`` imports anywhere in its body (function-level imports count too: an
    import inside a function to dodge a cycle still is the cycle)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("engine")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ENGINE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {t for t in _engine_imports(path) if t in modules and t != name}
        # a package is not a module of its own parts: importing engine.store from engine.store.x is
        # how a package's __init__ re-exports; only edges to other modules can close a circle
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def test_no_import_circle_in_the_engine():
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_engine_never_imports_streamlit():
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for p in ENGINE.rglob("*.py")
        if any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "streamlit" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "streamlit")
            for n in ast.walk(ast.parse(p.read_text()))
        )
    ]
    assert not offenders


def test_pages_without_models_load_no_torch():
    """Importing what those pages import at their top level loads no torch (models load lazily)."""
    imports = sorted(
        {
            (n.module if isinstance(n, ast.ImportFrom) else a.name)
            for page in PAGES
            for n in ast.parse(page.read_text()).body
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
            if not (isinstance(n, ast.ImportFrom) and n.module is None)
        }
        - {"__future__", "streamlit"}
    )
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports) + "print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False", f"torch loaded by importing {imports}"
