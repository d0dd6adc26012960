"""The layout reads like the design: the code stands on floors and no import runs back up one, no
import circle in the engine, no module over 450 lines, the engine never imports streamlit, and a page
that shows no model loads no torch (tests/test_app.py checks that pages are thin and never import
torch themselves)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from engine.paths import REPO_ROOT

ENGINE = REPO_ROOT / "engine"
CODE = ("engine", "workbench", "pages")  # every folder of the project's code, tests aside
MAX_LINES = 450

# The floors the code stands on, lowest first: a module imports only from its own floor or below.
# Each entry is a file, or a folder (trailing "/") for everything under it; the most specific entry
# places a file. A new module must be placed here, on the floor of what it is.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    # The ground: paths, the config dataclasses and their error, tensor ops, the one RM-gold
    # agreement (used by PPO's RM refresh, the world checks and the analyses alike), teaching texts.
    # They import nothing of the project.
    ("ground", ("engine/__init__.py", "engine/paths.py", "engine/config.py", "engine/ops.py",
                "engine/agreement.py", "engine/teaching.py")),
    # Run directories on disk (layout, locks, status, listing) and the model layer (loading, LoRA,
    # precision, the decoders generation runs).
    ("runs and models", ("engine/runs/", "engine/models/")),
    # What PPO reads and writes below the algorithm: the rollout store, generation with its
    # sampling signals, the worlds themselves (the built-in world's vocabulary, families, gold judge,
    # data, loading; the real world's tasks and checkers).
    ("store, sampling, worlds", ("engine/store/", "engine/sampling.py", "engine/token_text.py", "engine/world/", "engine/real_world/")),
    # Training and scoring beside PPO: the reward model, SFT, and the importers that turn other
    # trainers' logs into the store.
    ("reward, SFT, importers", ("engine/reward.py", "engine/sft.py", "engine/importers/")),
    # The algorithm: PPO, its jobs and their launching.
    ("PPO", ("engine/ppo/",)),
    # What reads PPO's runs and makes them: the analyses, the shipped demo runs.
    ("analysis, demo", ("engine/analysis/", "engine/demo.py")),
    # Tools that run the engine: the sampling lab, the worlds' builds and checks.
    ("lab, world tools", ("engine/lab.py", "engine/world_tools/", "engine/real_tools/")),
    # Benchmarks of all of the above.
    ("benchmarks", ("engine/bench/",)),
    # The libraries of the two front doors: the command line and the app.
    ("command line, app library", ("engine/cli/", "workbench/")),
    # The front doors themselves: ``python -m engine`` and the app's pages.
    ("entry points", ("engine/__main__.py", "pages/")),
]  # fmt: skip
# The pages that sample models (the lab, the Learn path) load torch when they do; every other page
# must start without it (torch's import costs seconds of a cold start).
MODEL_PAGES = {"sampling_lab", "learn"}
PAGES = sorted(p for p in (REPO_ROOT / "pages").glob("*.py") if p.stem not in MODEL_PAGES)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module of the project's code, by dotted name."""
    return {_module_name(p): p for folder in CODE for p in (REPO_ROOT / folder).rglob("*.py")}


def _imports(path: Path) -> dict[str, int]:
    """Project names ``path`` imports anywhere in its body, each with the line of its first import
    (function-level imports count too: an import inside a function to dodge a cycle still is the
    cycle). ``from a import b`` names both ``a`` and ``a.b``: either may be the module."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                up = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{up}.{base}" if base else up
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] in CODE:
                found.setdefault(name, node.lineno)
    return found


def _engine_imports(path: Path) -> set[str]:
    """Engine modules ``path`` imports anywhere in its body (see :func:`_imports`)."""
    return {name for name in _imports(path) if name.split(".")[0] == "engine"}


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


def _floor_of(path: Path) -> int | None:
    """The floor (0 = the ground) of the most specific FLOORS entry that holds ``path``, or None."""
    rel = path.relative_to(REPO_ROOT).as_posix()
    best: tuple[int, int] | None = None  # (entry length, floor)
    for floor, (_, entries) in enumerate(FLOORS):
        for entry in entries:
            if rel == entry or (entry.endswith("/") and rel.startswith(entry)):
                if best is None or len(entry) > best[0]:
                    best = (len(entry), floor)
    return None if best is None else best[1]


def test_every_module_stands_on_a_floor():
    unplaced = sorted(str(p.relative_to(REPO_ROOT)) for p in _modules().values() if _floor_of(p) is None)
    assert not unplaced, f"place these on a floor in tests/test_layout.py FLOORS: {unplaced}"
    missing = [e for _, entries in FLOORS for e in entries if not (REPO_ROOT / e).exists()]
    assert not missing, f"FLOORS names what the tree no longer has: {missing}"


def test_no_import_runs_back_up_a_floor():
    """A module imports from its own floor or below, never from a floor above it (at module level or
    inside a function alike): a module that needs a name from a higher floor is in the wrong place."""
    modules = _modules()
    upward = []
    for path in sorted(modules.values()):
        here = _floor_of(path)
        for target, line in sorted(_imports(path).items()):
            if target not in modules or here is None:
                continue
            there = _floor_of(modules[target])
            if there is not None and there > here:
                upward.append(
                    f"{path.relative_to(REPO_ROOT)}:{line} (floor {here + 1}, {FLOORS[here][0]}) imports "
                    f"{target} (floor {there + 1}, {FLOORS[there][0]})"
                )
    assert not upward, "imports that run back up a floor:\n" + "\n".join(upward)


def test_no_module_is_over_450_lines():
    """A module that long does several jobs: split it by job (tests aside)."""
    long = {
        str(p.relative_to(REPO_ROOT)): n
        for p in _modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
