#!/usr/bin/env bash
# Start the workbench on the embedded default (the built-in toy world shipped in data/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m streamlit run workbench/app.py "$@"
