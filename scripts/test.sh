#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, then pytest. Extra args go to pytest.
# Two passes side by side: every test but the browser ones on two workers (pytest-xdist; TEST_WORKERS
# changes the count, 0 runs in-process), since most tests are single-threaded Python (pages under
# AppTest, DuckDB, CLI start-up); and the browser tests one after another beside them (each starts a
# Streamlit server and a Chromium and spends much of its time waiting for the page, time the workers
# use). Their output follows the first pass's. The workers run at a lower priority (nice 10): the
# browser tests are the long pole (one after another), and the workers fill the cores the browser pass
# leaves idle while it waits on a page (the whole suite on 2 cores: 15.8 min at equal priority).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

# pytest exits 5 when it collected no tests: that is not a failure of the code under test.
run_pytest() {
  local rc=0
  ${PYTEST_PREFIX:-} .venv/bin/python -m pytest "$@" || rc=$?
  [ "$rc" = 5 ] && { echo "no tests collected"; rc=0; }
  return "$rc"
}
browser_log="$(mktemp)"
trap 'rm -f "$browser_log"' EXIT
run_pytest -m browser --durations=5 "$@" >"$browser_log" 2>&1 &
browser=$!
rc=0
PYTEST_PREFIX="nice -n 10" run_pytest -n "${TEST_WORKERS:-2}" -m "not browser" --durations=10 "$@" || rc=$?
wait "$browser" || rc=$?
echo "--- browser tests ---"
cat "$browser_log"
exit "$rc"
