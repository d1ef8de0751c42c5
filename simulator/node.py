"""One simulated inference node: its GPUs, its engine processes and its node agent.

Like a real node, each engine is its own process with its own PID and
``CUDA_VISIBLE_DEVICES``, the tracing middleware loaded into it the way vLLM loads it, and
the agent samples the node's GPUs through the NVML backend (over the simulator's NVML) and
scrapes each engine's ``/metrics``.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from agents.gpu import NvmlBackend
from agents.node_agent import NodeAgent, agent_lock
from agents.vllm_metrics import EngineScraper, Target
from inferledger.errors import UserError
from inferledger.otel import metric_exporter
from inferledger.procs import Supervisor, wait_for_port
from simulator import SIMULATED_RESOURCE
from simulator.fake_nvml import SimulatedNvml
from simulator.gpu_models import GPU_MODELS
from simulator.gpu_state import NodeGpus, sim_uuid

log = logging.getLogger("inferledger.sim.node")
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


def run_node(*, name: str, gpu_models: list[str], engines: list[EngineSpec], state: Path,
             host: str, collector_grpc: str, collector_http: str, interval_s: float,
             stop: threading.Event) -> None:
    unknown = set(gpu_models) - set(GPU_MODELS)
    if unknown:
        raise UserError(f"unknown simulated GPU model(s) {sorted(unknown)}; "
                         f"known: {sorted(GPU_MODELS)}")
    for e in engines:
        if any(g >= len(gpu_models) for g in e.gpus):
            raise UserError(f"engine {e} uses a GPU this node does not have")
    backend_spec = f"sim:{state}"
    # Before the state is (re)created: a second node on the same state would reset the
    # first one's GPUs and report them again.
    lock = agent_lock(backend_spec).acquire(hint="one simulated node per state file")
    NodeGpus.create(state, name, gpu_models).close()
    # The agent first, as on a real node: it sees the engines load their models.
    agent = NodeAgent(NvmlBackend(SimulatedNvml(state)), metric_exporter(collector_http),
                      host=name, interval_s=interval_s, resource_attributes=SIMULATED_RESOURCE)
    sup = Supervisor()
    targets: list[Target] = []
    stop_scraping = threading.Event()
    try:
        for e in engines:
            env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, e.gpus)),
                   "INFERLEDGER_HOST": name, "INFERLEDGER_GPU_BACKEND": backend_spec,
                   "INFERLEDGER_OTLP_ENDPOINT": collector_http,
                   "INFERLEDGER_OTLP_PROTOCOL": "http/protobuf",
                   "INFERLEDGER_TENANT_HASH_KEY": "simulated-demo-key"}
            child = sup.spawn(f"{name}/{e.model}", [
                "sim", "engine", "--state", str(state), "--model", e.model, "--host", host,
                "--port", str(e.port), "--otlp-endpoint", collector_grpc,
                "--middleware", MIDDLEWARE], env)
            wait_for_port(host, e.port, 60, child)
            targets.append(Target(f"http://{host}:{e.port}/metrics", child.proc.pid,
                                  [sim_uuid(name, i) for i in e.gpus]))
        EngineScraper(targets, metric_exporter(collector_http), name, interval_s,
                      resource_attributes=SIMULATED_RESOURCE).start(stop_scraping)
        log.info("node %s up: %d GPU(s) %s, engines %s", name, len(gpu_models),
                 ",".join(gpu_models), ", ".join(map(str, engines)))
        while not stop.wait(0.5):
            dead = sup.failed()
            if dead:
                raise RuntimeError(f"{dead.name} exited with code {dead.proc.returncode}")
    finally:
        stop_scraping.set()
        sup.stop_all()  # engines first, so their last spans are flushed
        lock.release()
        agent.shutdown()
