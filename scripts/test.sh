#!/usr/bin/env bash
# Install everything (test tools and chromium included), lint, then run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
