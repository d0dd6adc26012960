"""The command line: every command registered from one table, and a broken command or world check is
an error, never a command (or a W check) that silently disappears."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import engine.cli as cli
from engine.paths import REPO_ROOT


def test_every_command_registers():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 (argparse has no public API)
    assert set(commands) == set(cli.COMMANDS)


def test_a_broken_command_module_fails_loudly(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "broken", "engine.cli.no_such_command")
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        cli.build_parser()


def test_a_broken_world_check_module_fails_world_check(monkeypatch):
    # sys.modules[name] = None makes `import name` raise ImportError, as a broken module would
    monkeypatch.setitem(sys.modules, "engine.world_tools.ppo_checks", None)
    monkeypatch.delitem(sys.modules, "engine.world_tools.check", raising=False)
    with pytest.raises(ImportError):
        importlib.import_module("engine.world_tools.check")


def test_python_m_engine_fails_loudly_on_a_broken_command(tmp_path):
    """End to end: a command module that raises on import makes `python -m engine` exit non-zero
    with the error, whatever command was asked for."""
    sitecustomize = tmp_path / "sitecustomize.py"
    sitecustomize.write_text(
        "import engine.cli as cli\ncli.COMMANDS['broken'] = 'engine.cli.no_such_command'\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "engine", "store", "ls"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": f"{tmp_path}:{REPO_ROOT}", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode != 0 and "no_such_command" in out.stderr


def test_a_command_registers_only_itself_so_jobs_list_does_not_import_torch(tmp_path):
    """Registering every command imports what their defaults come from (the world's config pulls
    torch in: seconds); ``jobs list`` needs none of it."""
    code = (
        "import sys; from engine.cli import main; "
        f"main(['jobs', 'list', '--runs-dir', {str(tmp_path)!r}]); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert set(cli.build_parser("jobs")._subparsers._group_actions[0].choices) == {"jobs"}  # noqa: SLF001
