#!/usr/bin/env bash
# The TRL baselines' own environment (TRL is not a project dependency): a venv at $1 (default
# /tmp/trlvenv) holding the pins of requirements-trl.txt. An existing venv with exactly those versions is
# kept (a second or so); otherwise the pins are installed into it (about 90 s on first use; torch first,
# so that nothing pulls a CUDA build).
#   bash setup_trl_venv.sh [VENV]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${1:-/tmp/trlvenv}"
REQ="$HERE/requirements-trl.txt"

has_pins() {
  "$VENV/bin/python" - "$REQ" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

wrong = []
for line in open(sys.argv[1]):
    pin = line.split("#")[0].strip()
    if not pin:
        continue
    name, want = pin.split("==")
    try:
        have = version(name).split("+")[0]  # torch's local tag (+cpu) is not part of the pin
    except PackageNotFoundError:
        have = None
    if have != want:
        wrong.append(f"{name} {have} (want {want})")
if wrong:
    print("TRL venv: " + ", ".join(wrong), file=sys.stderr)
sys.exit(1 if wrong else 0)
PY
}

if [ -x "$VENV/bin/python" ] && has_pins; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "$(grep '^torch==' "$REQ")"
"$VENV/bin/pip" install -q -r "$REQ"
has_pins
