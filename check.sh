#!/usr/bin/env bash
# Every check in one command: lint, types, tests. Run from the repository root.
set -euo pipefail
python -m ruff check agentd engine scheduler memory tests bench
python -m mypy
python -m pytest -q "$@"
