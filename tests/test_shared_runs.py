"""A runs directory shared between users: files follow the umask, and another user's reader (the app,
``jobs list``, ``store ls``, ``store summary``) reads a run it does not own, lock file included."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import main
from engine.runs import STATUS_FILE, atomic_write_json, owner_lock
from engine.store.synthetic import write_synthetic_run

NOBODY = 65534


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _shared_run(root: Path, run_id: str) -> Path:
    """A run as a job leaves it: store files, a status file and the owner's lock file."""
    run_dir = root / run_id
    write_synthetic_run(run_dir, steps=3, prompts=4, samples=2, tokens=6)
    with owner_lock(run_dir):
        atomic_write_json({"state": "finished", "step": 3, "steps": 3, "pid": 1}, run_dir / STATUS_FILE)
    return run_dir


def test_store_files_follow_the_umask(tmp_path, umask_022):
    run_dir = _shared_run(tmp_path, "r")
    modes = {
        str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in [run_dir, *run_dir.rglob("*")]
    }
    assert len(modes) > 8
    expected = {name: 0o755 if (run_dir / name).is_dir() else 0o644 for name in modes}
    assert modes == expected
    assert not list(run_dir.rglob("*.tmp"))


@contextlib.contextmanager
def _as_nobody() -> Iterator[None]:
    """Run the block with the file permissions of ``nobody`` (effective ids; root's come back after).

    In this process rather than a new interpreter: ``nobody`` cannot read this interpreter's files
    under /root, so the modules a command needs are imported (as root) first.
    """
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_another_user_lists_and_summarises_a_run(umask_022, capsys, caplog):
    # Outside pytest's tmp_path, whose parent only root may enter.
    root = Path(tempfile.mkdtemp(prefix="shared-runs-"))
    try:
        root.chmod(0o755)
        warm, shared = root / "warm", root / "shared"
        _shared_run(warm, "w")
        run_dir = _shared_run(shared, "r")
        commands = [
            ["jobs", "--runs-dir", "{}", "list"],
            ["store", "ls", "--runs-dir", "{}"],
            ["store", "summary", "{}/{}"],
        ]
        for command in commands:  # as root, on another directory: imports what the command imports
            assert main([a.format(warm, "w") for a in command]) == 0
        capsys.readouterr()
        caplog.clear()

        outputs = []
        for command in commands:
            with _as_nobody():
                code = main([a.format(shared, "r") for a in command])
            assert code == 0
            outputs.append(capsys.readouterr().out)
        jobs_list, store_ls, summary = outputs
        assert jobs_list.startswith("r\tppo\tfinished\t3/3"), jobs_list
        assert "finished" in store_ls.splitlines()[1], store_ls
        steps = [line.split()[1] for line in summary.splitlines()[1:]]
        assert steps == ["0", "1", "2"], summary
        assert not [r.message for r in caplog.records if r.levelno >= logging.WARNING]
        assert (run_dir / ".lock").exists()
    finally:
        shutil.rmtree(root)
