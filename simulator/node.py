"""The simulator's half of a simulated node: its engines (``MODEL@GPUS:PORT``), the check that
they fit the node's GPUs, and how each engine process is started.

Like a real node, each engine is its own process with its own PID and
``CUDA_VISIBLE_DEVICES``, the tracing middleware loaded into it the way vLLM loads it (by
its import path, as vLLM's ``--middleware`` takes it). The node agent that samples the
GPUs is the real one, wired to the simulator's NVML by the command that starts the node
(``commands/sim_node.py``): the simulator imports no agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from inferledger.errors import UserError
from simulator.gpu_models import GPU_MODELS

MIDDLEWARE = "agents.tracing.InferLedgerMiddleware"
_ENGINE_SPEC = re.compile(r"^(?P<model>[\w.\-]+)@(?P<gpus>\d+(\+\d+)*):(?P<port>\d+)$")


@dataclass(frozen=True)
class EngineSpec:
    model: str
    gpus: tuple[int, ...]
    port: int

    @classmethod
    def parse(cls, text: str) -> EngineSpec:
        """``MODEL@GPU[+GPU…]:PORT``, e.g. ``qwen2.5-32b-instruct@0+1:8201`` (TP=2)."""
        m = _ENGINE_SPEC.match(text)
        if not m:
            raise UserError(f"engine spec {text!r} is not MODEL@GPU[+GPU...]:PORT")
        return cls(m["model"], tuple(int(g) for g in m["gpus"].split("+")), int(m["port"]))

    def __str__(self) -> str:
        return f"{self.model}@{'+'.join(map(str, self.gpus))}:{self.port}"


def check_node(gpu_models: list[str], engines: list[EngineSpec]) -> None:
    """Every GPU model known to the simulator, every engine on GPUs the node has."""
    unknown = set(gpu_models) - set(GPU_MODELS)
    if unknown:
        raise UserError(f"unknown simulated GPU model(s) {sorted(unknown)}; "
                        f"known: {sorted(GPU_MODELS)}")
    for e in engines:
        if any(g >= len(gpu_models) for g in e.gpus):
            raise UserError(f"engine {e} uses a GPU this node does not have")


def engine_process(e: EngineSpec, *, node: str, state: Path, host: str, backend_spec: str,
                   collector_grpc: str, collector_http: str) -> tuple[list[str], dict[str, str]]:
    """The ``python -m commands`` arguments and environment of one engine process: its GPUs,
    the middleware's settings (the node's GPU backend, the collector) and its own spans."""
    env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, e.gpus)),
           "INFERLEDGER_HOST": node, "INFERLEDGER_GPU_BACKEND": backend_spec,
           "INFERLEDGER_OTLP_ENDPOINT": collector_http,
           "INFERLEDGER_OTLP_PROTOCOL": "http/protobuf",
           "INFERLEDGER_TENANT_HASH_KEY": "simulated-demo-key"}
    argv = ["sim", "engine", "--state", str(state), "--model", e.model, "--host", host,
            "--port", str(e.port), "--otlp-endpoint", collector_grpc, "--middleware", MIDDLEWARE]
    return argv, env
