"""The reader's cursor pool under several sessions at once (Streamlit runs each session in a thread).

DuckDB 2.0 streams results: a result read only in part (``fetchone``) stays open on its cursor, and the
relational API (which binds the views) refuses a cursor holding one with a ``ResourceInUseException``.
A cursor must therefore never go back to the pool with a result still open.
"""

from __future__ import annotations

import threading

import pandas as pd

from engine import store
from engine.store import reader

THREADS = 4
ROUNDS = 6  # per thread; bounded by count, not time


def _entropy_page_queries(run_dir) -> dict:
    """What the Entropy dynamics page asks of one run: the picker's non-finite note (a one-row
    ``fetchone``), then the report's step statistics, metrics, one step's tokens and the step list."""
    return {
        "nonfinite": store.nonfinite_counts(run_dir),
        "stats": store.entropy_step_stats(run_dir),
        "metrics": store.step_metrics(run_dir, ["objective/kl"]),
        "tokens": store.step_tokens(run_dir, store.logged_steps(run_dir)[0]),
        "steps": store.logged_steps(run_dir),
    }


def _same(a: dict, b: dict) -> bool:
    return (
        all(a[k].equals(b[k]) if isinstance(a[k], pd.DataFrame) else a[k] == b[k] for k in a)
        and a.keys() == b.keys()
    )


def test_partly_read_result_does_not_poison_the_pooled_cursor(runs):
    # One session reads a one-row result with fetchone; the next query, on another run, gets the same
    # cursor (the most recently used) and must re-bind its views on it.
    assert store.nonfinite_counts(runs / "alpha")["reward"] == 0
    assert store.logged_steps(runs / "beta") == [5]
    assert store.logged_steps(runs / "alpha") == [0, 1]


def test_pooled_cursors_hold_no_open_result(runs):
    with reader.store_cursor(runs / "alpha") as (cur, _):
        cur.execute("SELECT * FROM rollouts").fetchone()  # leaves rows unread
    with reader._idle_lock:
        idle = list(reader._idle)
    for cursor in idle:
        # The relational API is what refuses a cursor with an open result.
        assert cursor.con.sql("SELECT 1 AS one").fetchall() == [(1,)]


def test_concurrent_sessions_on_different_runs(runs):
    run_dirs = [runs / "alpha", runs / "beta"]
    expected = {d.name: _entropy_page_queries(d) for d in run_dirs}
    errors: list[BaseException] = []
    mismatches: list[str] = []
    start = threading.Barrier(THREADS)

    def session(i: int) -> None:
        start.wait()
        for n in range(ROUNDS):
            run_dir = run_dirs[(i + n) % len(run_dirs)]
            try:
                got = _entropy_page_queries(run_dir)
            except Exception as exc:  # collected: an exception in a thread would not fail the test
                errors.append(exc)
                return
            if not _same(got, expected[run_dir.name]):
                mismatches.append(f"thread {i} round {n}: {run_dir.name}")

    threads = [threading.Thread(target=session, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
    assert not mismatches
