#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, then pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is not a failure of the code under test.
[ "$rc" = 5 ] && { echo "no tests collected"; exit 0; }
exit "$rc"
