"""One simulated inference node, put together: the simulator's GPUs and engine processes, and
the real node agent reading those GPUs through its NVML backend over the simulator's NVML
(handed in from here, so neither role imports the other) and scraping each engine's
``/metrics``."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from agents.gpu import NvmlBackend
from agents.node_agent import NodeAgent, agent_lock
from agents.vllm_metrics import EngineScraper, Target
from inferledger.otel import metric_exporter
from inferledger.procs import Supervisor, wait_for_port
from simulator import SIMULATED_RESOURCE
from simulator.fake_nvml import SimulatedNvml
from simulator.gpu_state import NodeGpus, sim_uuid
from simulator.node import EngineSpec, check_node, engine_process

log = logging.getLogger("inferledger.sim.node")


def run_node(*, name: str, gpu_models: list[str], engines: list[EngineSpec], state: Path,
             host: str, collector_grpc: str, collector_http: str, interval_s: float,
             stop: threading.Event) -> None:
    check_node(gpu_models, engines)
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
            argv, env = engine_process(e, node=name, state=state, host=host,
                                       backend_spec=backend_spec, collector_grpc=collector_grpc,
                                       collector_http=collector_http)
            child = sup.spawn(f"{name}/{e.model}", argv, env)
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
