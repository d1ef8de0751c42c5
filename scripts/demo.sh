#!/usr/bin/env bash
# Install, then run the whole stack on simulated GPUs. Extra arguments go to `inferledger demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/inferledger demo "$@"
