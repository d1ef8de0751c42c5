"""docker-compose.yml, checked without a Docker engine: schema, references, real commands."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from commands.cli import build_parser

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def _doc() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_matches_the_compose_specification_schema() -> None:
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                          "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_references_resolve() -> None:
    doc = _doc()
    services, volumes = doc["services"], set(doc.get("volumes") or {})
    for name, svc in services.items():
        for dep in svc.get("depends_on") or []:
            assert dep in services, f"{name} depends on undefined {dep}"
        for v in svc.get("volumes") or []:
            source = v.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} uses undeclared volume {source}"


@pytest.mark.parametrize("name", sorted(_doc()["services"]))
def test_every_command_is_real(name: str) -> None:
    svc = _doc()["services"][name]
    if svc.get("image", "").startswith("axllent/mailpit"):
        return  # the development mail catcher: a third-party image, nothing of ours runs
    cmd = svc["command"]
    if svc.get("image", "").startswith("vllm/"):
        # vLLM loads our middleware by import path: it must import.
        path = cmd[cmd.index("--middleware") + 1]
        module, attr = path.rsplit(".", 1)
        assert isinstance(getattr(importlib.import_module(module), attr), type)
        return
    assert cmd[0] == "inferledger"
    build_parser().parse_args(cmd[1:])  # SystemExit (test error) on an unknown subcommand


def test_both_stacks_are_described() -> None:
    services = _doc()["services"]
    gpu = {n for n, s in services.items() if "gpu" in (s.get("profiles") or [])}
    sim = {n for n, s in services.items() if "sim" in (s.get("profiles") or [])}
    assert {"vllm", "agent"} <= gpu and {"sim-node-a", "sim-node-b", "loadgen"} <= sim
    assert services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] \
        == "nvidia"


def test_vllms_spans_name_the_node_the_agent_reports() -> None:
    """vLLM's own spans carry no host unless OTEL_RESOURCE_ATTRIBUTES names it; it must be
    the name the middleware and the agent report, or engine-only rows cannot be placed."""
    services = _doc()["services"]
    env = services["vllm"]["environment"]
    agent = services["agent"]["command"]
    host = agent[agent.index("--host") + 1]
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == f"host.name={host}"
    assert env["INFERLEDGER_HOST"] == host and env["OTEL_SERVICE_NAME"]
