"""The README is the front door: short, the two commands near the top, nothing it names outside the
clone, and a layout section that is the tree as it is (every path it names exists; every module and
package of the engine is named)."""

from __future__ import annotations

import re

from engine.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
LINES = README.splitlines()


def _layout_entries() -> list[str]:
    """The paths the layout block names: a top-level entry at column 0, its children indented by 2."""
    block = README.split("## Layout", 1)[1].split("```", 2)[1]
    entries, parent = [], ""
    for line in block.splitlines():
        match = re.match(r"^( {0,2})(\S+)", line)
        if not match or not re.search(r"(/|\.py)$", match.group(2)):
            continue
        indent, name = match.groups()
        if indent:
            entries.append(parent + name)
        else:
            parent = name if name.endswith("/") else ""
            entries.append(name)
    return entries


def test_the_front_door_is_short_and_opens_with_the_two_commands():
    assert len(LINES) < 170
    top = "\n".join(LINES[:40])
    assert "bash scripts/app.sh" in top and "bash scripts/test.sh" in top


def test_nothing_named_lies_outside_the_clone():
    assert "../" not in README
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith(("http://", "https://")):
            assert (REPO_ROOT / target).exists(), f"README links to a missing {target}"


def test_the_layout_names_only_what_exists():
    entries = _layout_entries()
    assert len(entries) > 20
    missing = [e for e in entries if not (REPO_ROOT / e.rstrip("/")).exists()]
    assert not missing, f"the README's layout names paths that do not exist: {missing}"


def test_the_layout_names_every_engine_module_and_package():
    named = set(_layout_entries())
    engine = REPO_ROOT / "engine"
    children = [
        p for p in engine.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
    ]
    unnamed = sorted(
        f"engine/{p.name}{'/' if p.is_dir() else ''}"
        for p in children
        if p.name != "__init__.py" and f"engine/{p.name}{'/' if p.is_dir() else ''}" not in named
    )
    assert not unnamed, f"the README's layout does not name {unnamed}"
